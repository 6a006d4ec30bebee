# Least privilege: edges and GPU nodes may use the payload bucket; only the GPU nodes' agent may
# change a desired capacity, and only of its own autoscaling group; each node kind may read only
# the secrets it needs (secrets.tf).

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "payloads" {
  statement {
    sid       = "Payloads"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = ["${aws_s3_bucket.payloads.arn}/*"]
  }
  statement {
    # A task that spills over from another region carries its body in that region's bucket.
    sid       = "ReadOtherRegionsPayloads"
    actions   = ["s3:GetObject"]
    resources = ["arn:aws:s3:::${var.name}-*-payloads-*/*"]
  }
  statement {
    sid       = "ListPayloads"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.payloads.arn]
  }
}

data "aws_iam_policy_document" "autoscaler" {
  statement {
    sid       = "OwnGroupOnly"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:SetInstanceProtection"]
    resources = [aws_autoscaling_group.gpu.arn]
  }
  statement {
    sid       = "Describe"
    actions   = ["autoscaling:DescribeAutoScalingGroups"]
    resources = ["*"] # Describe* does not support resource-level permissions
  }
}

locals {
  # Node kind -> the policies its role gets.
  node_policies = {
    edge = {
      payloads = data.aws_iam_policy_document.payloads.json
      secrets  = data.aws_iam_policy_document.secrets["edge"].json
    }
    gpu = {
      payloads   = data.aws_iam_policy_document.payloads.json
      autoscaler = data.aws_iam_policy_document.autoscaler.json
      secrets    = data.aws_iam_policy_document.secrets["gpu"].json
    }
    etcd = { secrets = data.aws_iam_policy_document.secrets["etcd"].json }
  }
  node_kinds = toset(["edge", "gpu", "etcd"]) # static: the roles must not wait for the policies
  role_policies = merge([
    for kind, policies in local.node_policies : { for name, json in policies : "${kind}-${name}" => { kind = kind, json = json } }
  ]...)
}

resource "aws_iam_role" "node" {
  for_each           = local.node_kinds
  name_prefix        = "${var.name}-${each.key}-"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "node" {
  for_each = local.role_policies
  role     = aws_iam_role.node[each.value.kind].id
  policy   = each.value.json
}

resource "aws_iam_instance_profile" "node" {
  for_each    = local.node_kinds
  name_prefix = "${var.name}-${each.key}-"
  role        = aws_iam_role.node[each.key].name
}

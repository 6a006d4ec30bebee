# Least privilege: edges and GPU nodes may use the payload bucket; only the GPU nodes' agent may
# change a desired capacity, and only of its own autoscaling group.

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
    sid       = "ListPayloads"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.payloads.arn]
  }
}

data "aws_iam_policy_document" "autoscaler" {
  statement {
    sid       = "OwnGroupOnly"
    actions   = ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"]
    resources = [aws_autoscaling_group.gpu.arn]
  }
  statement {
    sid       = "Describe"
    actions   = ["autoscaling:DescribeAutoScalingGroups"]
    resources = ["*"] # Describe* does not support resource-level permissions
  }
}

resource "aws_iam_role" "edge" {
  name_prefix        = "${var.name}-edge-"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "edge_payloads" {
  role   = aws_iam_role.edge.id
  policy = data.aws_iam_policy_document.payloads.json
}

resource "aws_iam_instance_profile" "edge" {
  name_prefix = "${var.name}-edge-"
  role        = aws_iam_role.edge.name
}

resource "aws_iam_role" "gpu" {
  name_prefix        = "${var.name}-gpu-"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "gpu_payloads" {
  role   = aws_iam_role.gpu.id
  policy = data.aws_iam_policy_document.payloads.json
}

resource "aws_iam_role_policy" "gpu_autoscaler" {
  role   = aws_iam_role.gpu.id
  policy = data.aws_iam_policy_document.autoscaler.json
}

resource "aws_iam_instance_profile" "gpu" {
  name_prefix = "${var.name}-gpu-"
  role        = aws_iam_role.gpu.name
}

resource "aws_iam_role" "etcd" {
  name_prefix        = "${var.name}-etcd-"
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
  tags               = var.tags
}

resource "aws_iam_instance_profile" "etcd" {
  name_prefix = "${var.name}-etcd-"
  role        = aws_iam_role.etcd.name
}

# The private keys nodes need at boot live in SSM Parameter Store as SecureStrings; nodes fetch
# them with their instance role (templates/fetch-secret.sh). User data would expose them to
# anyone who may describe an instance or launch template, and to every process on the node.

locals {
  secret_values = { "etcd-ca-key" = var.tls.etcd_ca_key, "edge-key" = var.tls.edge_key }
  # Node kind -> the parameters its role may read.
  secret_readers = {
    edge = ["etcd-ca-key", "edge-key"]
    gpu  = ["etcd-ca-key"]
    etcd = ["etcd-ca-key"]
  }
  # Static names: var.tls is sensitive, and for_each may not be derived from it.
  secret_names = { for name in ["etcd-ca-key", "edge-key"] : name => "/${local.prefix}/${name}" }
}

resource "aws_ssm_parameter" "secret" {
  #checkov:skip=CKV_AWS_337:encrypted with the account's aws/ssm key; a customer-managed key is an account policy, not this module's
  for_each = local.secret_names
  name     = each.value
  type     = "SecureString"
  value    = local.secret_values[each.key]
  tags     = var.tags
}

data "aws_iam_policy_document" "secrets" {
  for_each = local.secret_readers
  statement {
    sid       = "OwnSecretsOnly"
    actions   = ["ssm:GetParameter"]
    resources = [for name in each.value : aws_ssm_parameter.secret[name].arn]
  }
}

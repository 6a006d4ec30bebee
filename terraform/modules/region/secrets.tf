# The private keys nodes need at boot live in SSM Parameter Store as SecureStrings; nodes fetch
# them with their instance role (templates/fetch-secret.sh). User data would expose them to
# anyone who may describe an instance or launch template, and to every process on the node.
#
# No node can make itself a more powerful etcd user: the client CA's key is not here (it never
# reaches AWS; `spillover etcd-certs` issued every client certificate in one step), and the two
# keys that could act as the admin or mint a member, root's and the peer CA's, are the etcd
# nodes' alone (which hold every key's value on their disks anyway).

locals {
  secret_values = {
    "edge-key"         = var.tls.edge_key
    "etcd-edge-key"    = var.tls.etcd_edge_key
    "etcd-agent-key"   = var.tls.etcd_agent_key
    "etcd-root-key"    = var.tls.etcd_root_key
    "etcd-peer-ca-key" = var.tls.etcd_peer_ca_key
  }
  # Node kind -> the parameters its role may read.
  secret_readers = {
    edge = ["edge-key", "etcd-edge-key"]
    gpu  = ["etcd-agent-key"]
    etcd = ["etcd-peer-ca-key", "etcd-root-key"]
  }
  # Static names: var.tls is sensitive, and for_each may not be derived from it.
  secret_names = { for name in ["edge-key", "etcd-edge-key", "etcd-agent-key", "etcd-root-key", "etcd-peer-ca-key"] : name => "/${local.prefix}/${name}" }
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

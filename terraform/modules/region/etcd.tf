# The region's partition lives in its own three-member etcd cluster, one member per AZ, each with
# its own encrypted EBS data volume, TLS between peers and to clients, and RBAC: one role per node
# kind (templates/etcd.yaml.tftpl, federation/etcd_rbac.py).

locals {
  etcd_names = [for i in range(3) : "${local.prefix}-etcd-${i}"]
  # Members find each other by the private DNS names AWS gives instances in the VPC.
  etcd_ips       = [for i in range(3) : cidrhost(local.create_vpc ? aws_subnet.private[i].cidr_block : data.aws_subnet.given[i].cidr_block, 10)]
  etcd_endpoints = [for ip in local.etcd_ips : "https://${ip}:2379"]
  etcd_cluster   = join(",", [for i, ip in local.etcd_ips : "${local.etcd_names[i]}=https://${ip}:2380"])
}

data "aws_subnet" "given" {
  count = local.create_vpc ? 0 : 3
  id    = var.subnet_ids[count.index]
}

resource "aws_instance" "etcd" {
  count                  = 3
  ami                    = var.etcd_ami
  instance_type          = var.etcd_instance_type
  subnet_id              = local.private[count.index]
  availability_zone      = var.azs[count.index]
  private_ip             = local.etcd_ips[count.index]
  vpc_security_group_ids = [aws_security_group.etcd.id]
  iam_instance_profile   = aws_iam_instance_profile.node["etcd"].name
  ebs_optimized          = true
  monitoring             = true
  tags                   = merge(var.tags, { Name = local.etcd_names[count.index] })

  metadata_options {
    http_tokens                 = "required" # IMDSv2 only
    http_endpoint               = "enabled"
    http_put_response_hop_limit = 1
  }

  root_block_device {
    encrypted = true
  }

  user_data = templatefile("${path.module}/templates/etcd.yaml.tftpl", {
    name      = local.etcd_names[count.index]
    ip        = local.etcd_ips[count.index]
    cluster   = local.etcd_cluster
    endpoints = local.etcd_endpoints
    boot      = local.boot
    quota     = var.etcd_quota_gb * 1073741824
    release   = var.etcd_release
    package   = var.spillover_version
  })
}

resource "aws_ebs_volume" "etcd" {
  #checkov:skip=CKV_AWS_189:encrypted with the account's EBS key; a customer-managed key is an account policy, not this module's
  count             = 3
  availability_zone = var.azs[count.index]
  size              = var.etcd_volume_gb
  type              = "gp3"
  encrypted         = true
  tags              = merge(var.tags, { Name = "${local.etcd_names[count.index]}-data" })
}

resource "aws_volume_attachment" "etcd" {
  count       = 3
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.etcd[count.index].id
  instance_id = aws_instance.etcd[count.index].id
}

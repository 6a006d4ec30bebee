# Edges behind an internet-facing NLB (the global accelerator's endpoint), and GPU nodes that run
# `spillover region`, each an autoscaling group from a launch template rendered here.

locals {
  control = coalesce(var.control_endpoints, local.etcd_endpoints)
  etcd_toml = {
    endpoints   = local.control
    partitions  = merge(var.partition_endpoints, { (var.region) = local.etcd_endpoints })
    quota_bytes = var.etcd_quota_gb * 1073741824
  }
  metadata_options = {
    http_tokens                 = "required" # IMDSv2 only
    http_endpoint               = "enabled"
    http_put_response_hop_limit = 1
    # Off: replicas are kept from the metadata service by a firewall rule on its IPv4 address
    # (templates/gpu.yaml.tftpl).
    http_protocol_ipv6 = "disabled"
  }
}

resource "aws_lb" "edge" {
  #checkov:skip=CKV_AWS_91:edges log requests themselves (access_log); NLB logs need an operator-chosen bucket
  enable_deletion_protection       = var.deletion_protection
  name_prefix                      = substr(replace(var.name, "-", ""), 0, 6)
  load_balancer_type               = "network"
  internal                         = false
  subnets                          = local.public
  enable_cross_zone_load_balancing = true
  tags                             = var.tags
}

resource "aws_lb_target_group" "edge" {
  name_prefix = substr(replace(var.name, "-", ""), 0, 6)
  port        = 443
  protocol    = "TCP"
  vpc_id      = local.vpc_id
  tags        = var.tags

  health_check {
    protocol = "HTTPS"
    path     = "/readyz"
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.edge.arn
  port              = 443
  protocol          = "TCP" # TLS ends at the edges, with their own certificate
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.edge.arn
  }
}

resource "aws_launch_template" "edge" {
  name_prefix            = "${local.prefix}-edge-"
  image_id               = var.edge_ami
  instance_type          = var.edge_instance_type
  vpc_security_group_ids = [aws_security_group.edge.id]
  tags                   = var.tags

  iam_instance_profile {
    arn = aws_iam_instance_profile.node["edge"].arn
  }

  metadata_options {
    http_tokens                 = local.metadata_options.http_tokens
    http_endpoint               = local.metadata_options.http_endpoint
    http_put_response_hop_limit = local.metadata_options.http_put_response_hop_limit
    http_protocol_ipv6          = local.metadata_options.http_protocol_ipv6
  }

  user_data = base64encode(templatefile("${path.module}/templates/edge.yaml.tftpl", {
    package = var.spillover_version
    boot    = local.boot
    config = {
      region      = var.region
      host        = "0.0.0.0"
      port        = 443
      tls_cert    = "/etc/spillover/edge.pem"
      tls_key     = "/run/credentials/spillover-edge.service/edge.key" # LoadCredential
      regions     = [for name, c in var.all_regions : { name = name, lat = c.lat, lon = c.lon }]
      etcd        = local.etcd_toml
      bucket      = aws_s3_bucket.payloads.bucket
      region_name = var.region
    }
  }))
}

resource "aws_autoscaling_group" "edge" {
  name_prefix = "${local.prefix}-edge-"

  dynamic "tag" {
    for_each = merge(var.tags, { Name = "${local.prefix}-edge" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
  min_size            = var.edge_count.min
  max_size            = var.edge_count.max
  vpc_zone_identifier = local.private
  target_group_arns   = [aws_lb_target_group.edge.arn]
  health_check_type   = "ELB"

  launch_template {
    id      = aws_launch_template.edge.id
    version = "$Latest"
  }
}

resource "aws_launch_template" "gpu" {
  name_prefix            = "${local.prefix}-gpu-"
  image_id               = var.gpu_ami
  instance_type          = var.gpu_instance_type
  vpc_security_group_ids = [aws_security_group.gpu.id]
  tags                   = var.tags

  iam_instance_profile {
    arn = aws_iam_instance_profile.node["gpu"].arn
  }

  metadata_options {
    http_tokens                 = local.metadata_options.http_tokens
    http_endpoint               = local.metadata_options.http_endpoint
    http_put_response_hop_limit = local.metadata_options.http_put_response_hop_limit
    http_protocol_ipv6          = local.metadata_options.http_protocol_ipv6
  }

  user_data = base64encode(templatefile("${path.module}/templates/gpu.yaml.tftpl", {
    package = var.spillover_version
    boot    = local.boot
    config = {
      name        = var.region
      lat         = var.coordinates.lat
      lon         = var.coordinates.lon
      peers       = var.peers
      app_root    = "/srv/apps"
      etcd        = local.etcd_toml
      bucket      = aws_s3_bucket.payloads.bucket
      region_name = var.region
      group       = local.gpu_group
      per_node    = var.gpu_replicas_per_node
    }
  }))
}

locals {
  gpu_group = "${local.prefix}-gpu"
  # What every node's first boot needs (etcd.tf too): public certificates in user data, private
  # keys fetched from SSM (secrets.tf), and the script with which etcd members mint their own.
  boot = {
    mint      = file("${path.module}/templates/mint-cert.sh")
    fetch     = file("${path.module}/templates/fetch-secret.sh")
    secrets   = local.secret_names
    region    = var.region
    edge_pem  = var.tls.edge_cert
    client_ca = var.tls.etcd_client_ca
    peer_ca   = var.tls.etcd_peer_ca # what clients trust the members by
    # Each kind's etcd certificate: its CN is its RBAC user (federation/etcd_rbac.py).
    etcd_cert = { edge = var.tls.etcd_edge_cert, agent = var.tls.etcd_agent_cert, root = var.tls.etcd_root_cert }
  }
}

resource "aws_autoscaling_group" "gpu" {
  # A fixed name: the nodes' region.toml names the group their autoscaler drives.
  name = local.gpu_group

  dynamic "tag" {
    for_each = merge(var.tags, { Name = "${local.prefix}-gpu" })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = true
    }
  }
  min_size            = var.gpu_count.min
  max_size            = var.gpu_count.max
  vpc_zone_identifier = local.private

  launch_template {
    id      = aws_launch_template.gpu.id
    version = "$Latest"
  }

  # Spillover's autoscaler owns the desired count; Terraform must not reset it on apply.
  lifecycle {
    ignore_changes = [desired_capacity]
  }
}

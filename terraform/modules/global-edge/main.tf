# The anycast front door: two static anycast IPs (AWS Global Accelerator) that answer in every
# edge location and hand TCP 443 to the nearest healthy region's edge NLB. TLS ends at the edges
# (Spillover's own HTTPS), so the accelerator only forwards TCP.

resource "aws_globalaccelerator_accelerator" "this" {
  name            = var.name
  ip_address_type = "IPV4"
  enabled         = true
  tags            = var.tags

  dynamic "attributes" {
    for_each = var.flow_logs_bucket == null ? [] : [var.flow_logs_bucket]
    content {
      flow_logs_enabled   = true
      flow_logs_s3_bucket = attributes.value
      flow_logs_s3_prefix = "${var.name}/"
    }
  }
}

resource "aws_globalaccelerator_listener" "https" {
  accelerator_arn = aws_globalaccelerator_accelerator.this.id
  protocol        = "TCP"
  # A client keeps its edge for a connection's life, not longer: any edge answers anything.
  client_affinity = "NONE"

  port_range {
    from_port = 443
    to_port   = 443
  }
}

resource "aws_globalaccelerator_endpoint_group" "region" {
  for_each = var.regions

  listener_arn            = aws_globalaccelerator_listener.https.id
  endpoint_group_region   = each.key
  traffic_dial_percentage = each.value.traffic_dial

  # The edges' readiness route: etcd reachable and the edge serving.
  health_check_protocol         = "HTTPS"
  health_check_port             = 443
  health_check_path             = "/readyz"
  health_check_interval_seconds = 10
  threshold_count               = 3

  endpoint_configuration {
    endpoint_id                    = each.value.nlb_arn
    weight                         = each.value.weight
    client_ip_preservation_enabled = true # the edges geolocate the real client
  }
}

output "nlb_arn" {
  description = "The edges' NLB: the global accelerator's endpoint for this region."
  value       = aws_lb.edge.arn
}

output "etcd_endpoints" {
  description = "Client URLs of this region's partition cluster."
  value       = local.etcd_endpoints
}

output "payload_bucket" {
  value = aws_s3_bucket.payloads.bucket
}

output "gpu_autoscaling_group" {
  description = "The group Spillover's autoscaler sizes."
  value       = aws_autoscaling_group.gpu.name
}

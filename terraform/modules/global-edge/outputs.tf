output "anycast_ips" {
  description = "The two static anycast IPv4 addresses to put in DNS."
  value       = flatten([for s in aws_globalaccelerator_accelerator.this.ip_sets : s.ip_addresses])
}

output "dns_name" {
  description = "The accelerator's DNS name (a CNAME target for the federation's hostname)."
  value       = aws_globalaccelerator_accelerator.this.dns_name
}

output "endpoint_groups" {
  description = "Endpoint group ARN per region."
  value       = { for k, g in aws_globalaccelerator_endpoint_group.region : k => g.arn }
}

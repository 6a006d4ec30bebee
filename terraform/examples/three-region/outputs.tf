output "anycast_ips" {
  description = "Point the federation's hostname here (A records), or CNAME it to dns_name."
  value       = module.edge.anycast_ips
}

output "dns_name" {
  value = module.edge.dns_name
}

output "health_url" {
  description = "The federation health API, answered by every edge."
  value       = "https://${var.hostname}/v1/federation/health"
}

output "etcd_endpoints" {
  description = "Each region's partition cluster (the first one also holds the control keyspace)."
  value = {
    "us-east-1"  = module.us_east_1.etcd_endpoints
    "eu-west-1"  = module.eu_west_1.etcd_endpoints
    "ap-south-1" = module.ap_south_1.etcd_endpoints
  }
}

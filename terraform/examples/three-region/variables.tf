variable "name" {
  description = "Name of the federation."
  type        = string
  default     = "spillover"
}

variable "hostname" {
  description = "The DNS name clients use (a CNAME to the accelerator); in the health URL output."
  type        = string
}

variable "amis" {
  description = "Per region: AMIs for edge nodes, GPU nodes and etcd members."
  type        = map(object({ edge = string, gpu = string, etcd = string }))
}

variable "gpu_instance_type" {
  type    = string
  default = "g5.xlarge"
}

variable "gpu_count" {
  type    = object({ min = number, max = number })
  default = { min = 0, max = 8 }
}

variable "traffic_dial" {
  description = "Percent of each region's anycast traffic it takes; 0 drains it."
  type        = map(number)
  default     = { "us-east-1" = 100, "eu-west-1" = 100, "ap-south-1" = 100 }
}

variable "tls" {
  description = "The edges' certificate chain and key (for hostname); the etcd clusters' CA and its key (nodes mint their etcd certificates from it)."
  type        = object({ edge_cert = string, edge_key = string, etcd_ca = string, etcd_ca_key = string })
  sensitive   = true
}

variable "tags" {
  type    = map(string)
  default = { project = "spillover" }
}

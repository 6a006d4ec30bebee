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
  description = "The edges' certificate chain and key (for hostname); etcd's CAs, peer CA key and per-user certificates from `spillover etcd-certs`: modules/region's tls, which names and checks each (docs/deploy.md)."
  type        = map(string)
  sensitive   = true
}

variable "etcd_release" {
  description = "The etcd release every member runs and its linux tarball's sha256 (modules/region's etcd_release: 3.6.12 or later)."
  type        = object({ version = optional(string, "3.6.12"), sha256 = string })
}

variable "tags" {
  type    = map(string)
  default = { project = "spillover" }
}

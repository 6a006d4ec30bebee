variable "name" {
  description = "Name of the federation; prefixes every resource."
  type        = string
}

variable "region" {
  description = "This region's name as Spillover knows it (the AWS region, e.g. eu-west-1)."
  type        = string
}

variable "coordinates" {
  description = "Where the region is, for the edges' nearest-region choice."
  type        = object({ lat = number, lon = number })
}

variable "peers" {
  description = "The other regions, whose partitions this region follows (spillover)."
  type        = list(string)
  default     = []
}

variable "all_regions" {
  description = "Every region of the federation with its coordinates (the edges' edge.toml)."
  type        = map(object({ lat = number, lon = number }))
}

variable "partition_endpoints" {
  description = "etcd client URLs of the other regions' partition clusters, by region."
  type        = map(list(string))
  default     = {}
}

variable "control_endpoints" {
  description = "etcd client URLs of the control keyspace; null: this region's cluster holds it."
  type        = list(string)
  default     = null
}

variable "vpc_id" {
  description = "Use this VPC instead of creating one (then give subnet_ids too)."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Subnets of the given VPC, one per availability zone, at least three."
  type        = list(string)
  default     = []
}

variable "vpc_cidr" {
  description = "CIDR of the VPC this module creates."
  type        = string
  default     = "10.40.0.0/16"
}

variable "azs" {
  description = "Three availability zones (etcd puts one member in each)."
  type        = list(string)
  validation {
    condition     = length(var.azs) == 3
    error_message = "azs: exactly three availability zones, one etcd member each."
  }
}

variable "edge_instance_type" {
  type    = string
  default = "c7g.large"
}

variable "edge_ami" {
  description = "AMI of the edge nodes (Debian with Python 3.11; cloud-init installs Spillover)."
  type        = string
}

variable "edge_count" {
  type    = object({ min = number, max = number })
  default = { min = 2, max = 6 }
}

variable "gpu_instance_type" {
  type    = string
  default = "g5.xlarge"
}

variable "gpu_ami" {
  description = "AMI of the GPU nodes (with NVIDIA drivers)."
  type        = string
}

variable "gpu_count" {
  description = "Bounds of the GPU autoscaling group; Spillover's autoscaler sets the desired count."
  type        = object({ min = number, max = number })
  default     = { min = 0, max = 8 }
}

variable "etcd_instance_type" {
  type    = string
  default = "m7g.large"
}

variable "etcd_ami" {
  type = string
}

variable "etcd_volume_gb" {
  type    = number
  default = 50
}

variable "etcd_quota_gb" {
  description = "Each etcd member's --quota-backend-bytes, in GiB. Edges refuse new tasks above 80 % of it (503 storage_full), until finished ones are swept and the agents' keeper has defragmented the members. etcd warns above 8 GiB."
  type        = number
  default     = 8
  validation {
    condition     = var.etcd_quota_gb >= 1 && var.etcd_quota_gb <= 8 && var.etcd_quota_gb * 2 <= var.etcd_volume_gb
    error_message = "etcd_quota_gb must be 1 to 8 and at most half of etcd_volume_gb (a defragmentation writes a copy of the db)."
  }
}

variable "tls" {
  description = "PEM material the nodes use: the edges' public certificate chain and key; the CA etcd peers and clients trust, and its key. The keys go to SSM Parameter Store (SecureString), not user data; every node fetches the CA key at first boot, mints its own etcd certificate and deletes the CA key."
  type = object({
    edge_cert   = string
    edge_key    = string
    etcd_ca     = string
    etcd_ca_key = string
  })
  sensitive = true
}

variable "gpu_replicas_per_node" {
  description = "Replicas of each app one GPU node runs; the autoscaler adds nodes in these steps."
  type        = number
  default     = 1
}

variable "payload_expiry_days" {
  description = "Large payloads and results are deleted from S3 after this many days."
  type        = number
  default     = 2
}

variable "spillover_version" {
  description = "The pip requirement the nodes install, e.g. \"spillover==0.3.0\"."
  type        = string
  default     = "spillover"
}

variable "tags" {
  type    = map(string)
  default = {}
}

variable "deletion_protection" {
  description = "Protect the edges' NLB from deletion (turn off to destroy the region)."
  type        = bool
  default     = true
}

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
  description = <<-EOT
    PEM material. The edges' HTTPS chain and key. etcd's, issued once by `spillover etcd-certs`
    (docs/deploy.md): the client CA (members trust it for clients), the peer CA and its key
    (each member mints its own certificate for its IP at first boot), and a certificate and key
    per etcd user: edge, agent, root (the certificate's CN is the RBAC user). There is no client
    CA key here: it never reaches AWS, so no node can mint itself a user. The keys go to SSM
    Parameter Store (SecureString), each readable by the one node kind that uses it.
  EOT
  type = object({
    edge_cert        = string
    edge_key         = string
    etcd_client_ca   = string
    etcd_peer_ca     = string
    etcd_peer_ca_key = string
    etcd_edge_cert   = string
    etcd_edge_key    = string
    etcd_agent_cert  = string
    etcd_agent_key   = string
    etcd_root_cert   = string
    etcd_root_key    = string
  })
  sensitive = true
  validation {
    condition     = var.tls.etcd_client_ca != var.tls.etcd_peer_ca
    error_message = "tls: etcd_client_ca and etcd_peer_ca must be two CAs: with one, a client certificate could join the cluster as a member (spillover etcd-certs issues both)."
  }
  validation {
    condition     = !strcontains(var.tls.etcd_client_ca, "PRIVATE KEY") && !strcontains(var.tls.etcd_peer_ca, "PRIVATE KEY")
    error_message = "tls: etcd_client_ca and etcd_peer_ca are certificates only; the client CA's key stays with you (offline), the peer CA's goes in etcd_peer_ca_key."
  }
}

variable "etcd_release" {
  description = <<-EOT
    The etcd release the members run (from etcd's GitHub releases, checked against sha256: the
    linux tarball's for the etcd instances' architecture, arm64 for the default m7g). RBAC is
    only as good as etcd's checks: releases before 3.6.12 let any user around the roles (nested
    txns, CVE-2026-33343; alarms and leases, CVE-2026-33413; prev_kv, CVE-2026-44283; 3.4 and
    3.5 drop the auth checks while a NOSPACE alarm is raised), and root alone may call Status
    before it. Debian 12's etcd-server is 3.4.23.
  EOT
  type = object({
    version = optional(string, "3.6.12")
    sha256  = string
  })
  validation {
    condition = can(regex("^[0-9a-f]{64}$", var.etcd_release.sha256)) && try(
      tonumber(split(".", var.etcd_release.version)[0]) == 3 && (
        tonumber(split(".", var.etcd_release.version)[1]) > 6 || (
          tonumber(split(".", var.etcd_release.version)[1]) == 6 && tonumber(split(".", var.etcd_release.version)[2]) >= 12
      )), false
    )
    error_message = "etcd_release: version 3.6.12 or later (older releases do not enforce RBAC: docs/security.md) and the tarball's sha256 (64 hex digits)."
  }
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

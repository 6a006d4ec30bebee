variable "name" {
  description = "Name of the federation; prefixes every resource."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9-]{1,32}$", var.name))
    error_message = "name must be 1-32 of [a-z0-9-]."
  }
}

variable "regions" {
  description = <<-EOT
    One entry per region: the ARN of the region's edge NLB, the share of traffic the region
    takes (traffic_dial, 0-100; set 0 to drain it) and the NLB's weight inside the group.
  EOT
  type = map(object({
    nlb_arn      = string
    traffic_dial = optional(number, 100)
    weight       = optional(number, 128)
  }))
  validation {
    condition     = length(var.regions) > 0
    error_message = "regions needs at least one region."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : r.traffic_dial >= 0 && r.traffic_dial <= 100])
    error_message = "traffic_dial is a percentage: 0 to 100."
  }
  validation {
    condition     = alltrue([for r in values(var.regions) : r.weight >= 0 && r.weight <= 255])
    error_message = "weight must be 0 to 255 (AWS Global Accelerator)."
  }
}

variable "flow_logs_bucket" {
  description = "S3 bucket for Global Accelerator flow logs; null turns them off."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

# Three regions wired into one federation: each its own partition cluster, edges and GPU pool;
# one anycast front door. `terraform apply` with your AMIs and TLS material (variables.tf).

terraform {
  required_version = ">= 1.7"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"
}

provider "aws" {
  alias  = "eu_west_1"
  region = "eu-west-1"
}

provider "aws" {
  alias  = "ap_south_1"
  region = "ap-south-1"
}

# Global Accelerator's API lives in us-west-2, whatever regions it serves.
provider "aws" {
  alias  = "global"
  region = "us-west-2"
}

locals {
  regions = {
    "us-east-1"  = { lat = 39.0, lon = -77.5, azs = ["us-east-1a", "us-east-1b", "us-east-1c"], cidr = "10.41.0.0/16" }
    "eu-west-1"  = { lat = 53.3, lon = -6.3, azs = ["eu-west-1a", "eu-west-1b", "eu-west-1c"], cidr = "10.42.0.0/16" }
    "ap-south-1" = { lat = 19.1, lon = 72.9, azs = ["ap-south-1a", "ap-south-1b", "ap-south-1c"], cidr = "10.43.0.0/16" }
  }
  coordinates = { for k, r in local.regions : k => { lat = r.lat, lon = r.lon } }
  # Each region's etcd client URLs, known before apply (fixed private IPs), for the others' configs.
  partition = {
    for k, r in local.regions : k => [for i in range(3) : "https://${cidrhost(cidrsubnet(r.cidr, 8, 10 + i), 10)}:2379"]
  }
}

module "us_east_1" {
  source              = "../../modules/region"
  providers           = { aws = aws.us_east_1 }
  name                = var.name
  region              = "us-east-1"
  coordinates         = local.coordinates["us-east-1"]
  peers               = ["eu-west-1", "ap-south-1"]
  all_regions         = local.coordinates
  partition_endpoints = { for k, v in local.partition : k => v if k != "us-east-1" }
  azs                 = local.regions["us-east-1"].azs
  vpc_cidr            = local.regions["us-east-1"].cidr
  edge_ami            = var.amis["us-east-1"].edge
  gpu_ami             = var.amis["us-east-1"].gpu
  etcd_ami            = var.amis["us-east-1"].etcd
  gpu_instance_type   = var.gpu_instance_type
  gpu_count           = var.gpu_count
  tls                 = var.tls
  etcd_release        = var.etcd_release
  tags                = var.tags
}

module "eu_west_1" {
  source              = "../../modules/region"
  providers           = { aws = aws.eu_west_1 }
  name                = var.name
  region              = "eu-west-1"
  coordinates         = local.coordinates["eu-west-1"]
  peers               = ["us-east-1", "ap-south-1"]
  all_regions         = local.coordinates
  partition_endpoints = { for k, v in local.partition : k => v if k != "eu-west-1" }
  control_endpoints   = local.partition["us-east-1"] # the control keyspace lives in us-east-1
  azs                 = local.regions["eu-west-1"].azs
  vpc_cidr            = local.regions["eu-west-1"].cidr
  edge_ami            = var.amis["eu-west-1"].edge
  gpu_ami             = var.amis["eu-west-1"].gpu
  etcd_ami            = var.amis["eu-west-1"].etcd
  gpu_instance_type   = var.gpu_instance_type
  gpu_count           = var.gpu_count
  tls                 = var.tls
  etcd_release        = var.etcd_release
  tags                = var.tags
}

module "ap_south_1" {
  source              = "../../modules/region"
  providers           = { aws = aws.ap_south_1 }
  name                = var.name
  region              = "ap-south-1"
  coordinates         = local.coordinates["ap-south-1"]
  peers               = ["us-east-1", "eu-west-1"]
  all_regions         = local.coordinates
  partition_endpoints = { for k, v in local.partition : k => v if k != "ap-south-1" }
  control_endpoints   = local.partition["us-east-1"]
  azs                 = local.regions["ap-south-1"].azs
  vpc_cidr            = local.regions["ap-south-1"].cidr
  edge_ami            = var.amis["ap-south-1"].edge
  gpu_ami             = var.amis["ap-south-1"].gpu
  etcd_ami            = var.amis["ap-south-1"].etcd
  gpu_instance_type   = var.gpu_instance_type
  gpu_count           = var.gpu_count
  tls                 = var.tls
  etcd_release        = var.etcd_release
  tags                = var.tags
}

module "edge" {
  source    = "../../modules/global-edge"
  providers = { aws = aws.global }
  name      = var.name
  regions = {
    "us-east-1"  = { nlb_arn = module.us_east_1.nlb_arn, traffic_dial = var.traffic_dial["us-east-1"] }
    "eu-west-1"  = { nlb_arn = module.eu_west_1.nlb_arn, traffic_dial = var.traffic_dial["eu-west-1"] }
    "ap-south-1" = { nlb_arn = module.ap_south_1.nlb_arn, traffic_dial = var.traffic_dial["ap-south-1"] }
  }
  tags = var.tags
}

# One mock per provider alias: nothing leaves this machine.
mock_provider "aws" {
  alias  = "us_east_1"
  source = "../../modules/region/tests/mocks"
}
mock_provider "aws" {
  alias  = "eu_west_1"
  source = "../../modules/region/tests/mocks"
}
mock_provider "aws" {
  alias  = "ap_south_1"
  source = "../../modules/region/tests/mocks"
}
mock_provider "aws" {
  alias  = "global"
  source = "../../modules/global-edge/tests/mocks"
}

variables {
  hostname = "infer.example.com"
  amis = {
    "us-east-1"  = { edge = "ami-1", gpu = "ami-2", etcd = "ami-3" }
    "eu-west-1"  = { edge = "ami-1", gpu = "ami-2", etcd = "ami-3" }
    "ap-south-1" = { edge = "ami-1", gpu = "ami-2", etcd = "ami-3" }
  }
  tls = {
    edge_cert        = "c", edge_key = "k", etcd_client_ca = "client ca", etcd_peer_ca = "peer ca",
    etcd_peer_ca_key = "k", etcd_edge_cert = "c", etcd_edge_key = "k", etcd_agent_cert = "c",
    etcd_agent_key   = "k", etcd_root_cert = "c", etcd_root_key = "k",
  }
  etcd_release = { sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
}

run "three_regions_behind_one_accelerator" {
  command = apply # against the mocks: nothing is created

  assert {
    condition     = length(module.edge.endpoint_groups) == 3
    error_message = "an endpoint group per region"
  }
  assert {
    condition     = output.health_url == "https://infer.example.com/v1/federation/health"
    error_message = "the health API URL is an output"
  }
  assert {
    condition     = alltrue([for eps in values(output.etcd_endpoints) : length(eps) == 3])
    error_message = "three etcd members per region"
  }
}

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name = "spillover"
  regions = {
    "us-east-1"  = { nlb_arn = "arn:aws:elasticloadbalancing:us-east-1:111122223333:loadbalancer/net/edge/1" }
    "eu-west-1"  = { nlb_arn = "arn:aws:elasticloadbalancing:eu-west-1:111122223333:loadbalancer/net/edge/2" }
    "ap-south-1" = { nlb_arn = "arn:aws:elasticloadbalancing:ap-south-1:111122223333:loadbalancer/net/edge/3", traffic_dial = 0 }
  }
}

run "one_endpoint_group_per_region" {
  command = plan

  assert {
    condition     = length(aws_globalaccelerator_endpoint_group.region) == 3
    error_message = "expected an endpoint group per region"
  }
  assert {
    condition     = toset([for g in aws_globalaccelerator_endpoint_group.region : g.endpoint_group_region]) == toset(["us-east-1", "eu-west-1", "ap-south-1"])
    error_message = "endpoint groups must be in their own regions"
  }
  assert {
    condition     = aws_globalaccelerator_endpoint_group.region["ap-south-1"].traffic_dial_percentage == 0
    error_message = "traffic_dial must reach the endpoint group (drain a region with 0)"
  }
  assert {
    condition     = alltrue([for g in aws_globalaccelerator_endpoint_group.region : g.health_check_path == "/readyz"])
    error_message = "health checks must use the edges' readiness route"
  }
}

run "listener_on_443_only" {
  command = plan

  assert {
    condition     = length(aws_globalaccelerator_listener.https.port_range) == 1
    error_message = "exactly one port range"
  }
  assert {
    condition     = one(aws_globalaccelerator_listener.https.port_range).from_port == 443 && one(aws_globalaccelerator_listener.https.port_range).to_port == 443
    error_message = "the listener must take 443 and nothing else"
  }
}

run "bad_traffic_dial_is_refused" {
  command = plan

  variables {
    regions = {
      "us-east-1" = { nlb_arn = "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/net/e/1", traffic_dial = 150 }
    }
  }
  expect_failures = [var.regions]
}

# Values the AWS provider validates where a mock's random string would not pass.
mock_resource "aws_globalaccelerator_accelerator" {
  defaults = { id = "arn:aws:globalaccelerator::111122223333:accelerator/00000000-0000-0000-0000-000000000001" }
}

mock_resource "aws_globalaccelerator_listener" {
  defaults = { id = "arn:aws:globalaccelerator::111122223333:accelerator/00000000-0000-0000-0000-000000000001/listener/0000000a" }
}

# A VPC of our own unless one is given: three public subnets (edges' NLB) and three private
# ones (edges, GPU nodes, etcd), one per AZ.

locals {
  create_vpc = var.vpc_id == null
  vpc_id     = local.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  private    = local.create_vpc ? aws_subnet.private[*].id : var.subnet_ids
  public     = local.create_vpc ? aws_subnet.public[*].id : var.subnet_ids
  vpc_cidr   = local.create_vpc ? var.vpc_cidr : data.aws_vpc.given[0].cidr_block
  prefix     = "${var.name}-${var.region}"
  # What nodes reach out to: AWS APIs, S3, PyPI and etcd's releases (443), Debian mirrors (80),
  # etcd in this and the other regions (2379 clients, 2380 peers). DNS and NTP to the VPC's
  # resolvers are not filtered by security groups.
  egress = [
    { description = "HTTPS: AWS APIs, S3, PyPI, etcd releases", from = 443, to = 443 },
    { description = "HTTP: Debian mirrors", from = 80, to = 80 },
    { description = "etcd clients and peers", from = 2379, to = 2380 },
  ]
}

data "aws_vpc" "given" {
  count = local.create_vpc ? 0 : 1
  id    = var.vpc_id
}

resource "aws_vpc" "this" {
  #checkov:skip=CKV2_AWS_11:flow logs cost money and need a destination; the operator's choice
  count                = local.create_vpc ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_hostnames = true
  tags                 = merge(var.tags, { Name = local.prefix })
}

# The default security group of a VPC we create allows nothing.
resource "aws_default_security_group" "this" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = var.tags
}

resource "aws_subnet" "public" {
  count             = local.create_vpc ? 3 : 0
  vpc_id            = aws_vpc.this[0].id
  availability_zone = var.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, count.index)
  tags              = merge(var.tags, { Name = "${local.prefix}-public-${count.index}" })
}

resource "aws_subnet" "private" {
  count             = local.create_vpc ? 3 : 0
  vpc_id            = aws_vpc.this[0].id
  availability_zone = var.azs[count.index]
  cidr_block        = cidrsubnet(var.vpc_cidr, 8, 10 + count.index)
  tags              = merge(var.tags, { Name = "${local.prefix}-private-${count.index}" })
}

resource "aws_internet_gateway" "this" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = var.tags
}

resource "aws_eip" "nat" {
  count  = local.create_vpc ? 1 : 0
  domain = "vpc"
  tags   = var.tags
}

resource "aws_nat_gateway" "this" {
  count         = local.create_vpc ? 1 : 0
  allocation_id = aws_eip.nat[0].id
  subnet_id     = aws_subnet.public[0].id
  tags          = var.tags
}

resource "aws_route_table" "public" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this[0].id
  }
  tags = var.tags
}

resource "aws_route_table" "private" {
  count  = local.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  route {
    cidr_block     = "0.0.0.0/0"
    nat_gateway_id = aws_nat_gateway.this[0].id
  }
  tags = var.tags
}

resource "aws_route_table_association" "public" {
  count          = local.create_vpc ? 3 : 0
  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public[0].id
}

resource "aws_route_table_association" "private" {
  count          = local.create_vpc ? 3 : 0
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[0].id
}

# Only 443 is public, and only on the edges. Everything else stays inside the VPC; etcd peers and
# clients across regions reach each other over TLS through peering or a transit gateway that
# the operator adds (not this module: it is account-specific).

resource "aws_security_group" "edge" {
  name        = "${local.prefix}-edge"
  description = "Spillover edges: HTTPS from anywhere (through the NLB)"
  vpc_id      = local.vpc_id
  tags        = var.tags

  ingress {
    description = "HTTPS"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }
}

resource "aws_security_group" "gpu" {
  name        = "${local.prefix}-gpu"
  description = "Spillover regional agents and replicas: no inbound traffic"
  vpc_id      = local.vpc_id
  tags        = var.tags

}

resource "aws_security_group" "etcd" {
  name        = "${local.prefix}-etcd"
  description = "etcd: clients and peers from inside the VPC only, TLS"
  vpc_id      = local.vpc_id
  tags        = var.tags

  ingress {
    description = "etcd clients"
    from_port   = 2379
    to_port     = 2379
    protocol    = "tcp"
    cidr_blocks = [local.vpc_cidr]
  }
  ingress {
    description = "etcd peers"
    from_port   = 2380
    to_port     = 2380
    protocol    = "tcp"
    cidr_blocks = [local.vpc_cidr]
  }
}

# What every node may reach out to (local.egress), on each of the three groups.
resource "aws_vpc_security_group_egress_rule" "node" {
  for_each = {
    for pair in setproduct(["edge", "gpu", "etcd"], local.egress) : "${pair[0]}-${pair[1].from}" => {
      group = { edge = aws_security_group.edge.id, gpu = aws_security_group.gpu.id, etcd = aws_security_group.etcd.id }[pair[0]]
      rule  = pair[1]
    }
  }
  security_group_id = each.value.group
  description       = each.value.rule.description
  ip_protocol       = "tcp"
  from_port         = each.value.rule.from
  to_port           = each.value.rule.to
  cidr_ipv4         = "0.0.0.0/0"
}

mock_provider "aws" {
  source = "./tests/mocks"
}

variables {
  name        = "sp"
  region      = "eu-west-1"
  coordinates = { lat = 53.3, lon = -6.3 }
  peers       = ["us-east-1"]
  all_regions = {
    "eu-west-1" = { lat = 53.3, lon = -6.3 }
    "us-east-1" = { lat = 39.0, lon = -77.5 }
  }
  azs      = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  edge_ami = "ami-00000000000000001"
  gpu_ami  = "ami-00000000000000002"
  etcd_ami = "ami-00000000000000003"
  tls = {
    edge_cert        = "-----BEGIN CERTIFICATE----- edge"
    edge_key         = "-----BEGIN PRIVATE KEY----- edge"
    etcd_client_ca   = "-----BEGIN CERTIFICATE----- etcd client ca"
    etcd_peer_ca     = "-----BEGIN CERTIFICATE----- etcd peer ca"
    etcd_peer_ca_key = "-----BEGIN PRIVATE KEY----- etcd peer ca"
    etcd_edge_cert   = "-----BEGIN CERTIFICATE----- CN=edge"
    etcd_edge_key    = "-----BEGIN PRIVATE KEY----- CN=edge"
    etcd_agent_cert  = "-----BEGIN CERTIFICATE----- CN=agent"
    etcd_agent_key   = "-----BEGIN PRIVATE KEY----- CN=agent"
    etcd_root_cert   = "-----BEGIN CERTIFICATE----- CN=root"
    etcd_root_key    = "-----BEGIN PRIVATE KEY----- CN=root"
  }
  etcd_release = { sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
}

run "imdsv2_on_every_launch_template_and_etcd_instance" {
  command = apply # against the mock provider: nothing is created

  assert {
    condition     = aws_launch_template.edge.metadata_options[0].http_tokens == "required" && aws_launch_template.gpu.metadata_options[0].http_tokens == "required"
    error_message = "launch templates must require IMDSv2"
  }
  assert {
    condition     = alltrue([for i in aws_instance.etcd : i.metadata_options[0].http_tokens == "required"])
    error_message = "etcd instances must require IMDSv2"
  }
}

run "replicas_cannot_reach_the_instance_metadata_service" {
  command = apply # against the mock provider: nothing is created

  assert {
    condition = alltrue([
      strcontains(base64decode(aws_launch_template.gpu.user_data), "rule=\"OUTPUT -d 169.254.169.254 -m owner --gid-owner spillover-replicas -j REJECT\""),
      strcontains(base64decode(aws_launch_template.gpu.user_data), "iptables -C $rule 2>/dev/null || iptables -I $rule"),
      strcontains(base64decode(aws_launch_template.gpu.user_data), "groupadd --system spillover-replicas"),
    ])
    error_message = "GPU nodes must firewall the replicas' group (spillover-replicas, regional/users.py) from the metadata service"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.gpu.user_data), "ExecStartPre=/usr/local/sbin/spillover-replica-firewall\n      ExecStart=/opt/spillover/bin/spillover region")
    error_message = "the rule is in place before the agent starts, at every boot (no replica without it)"
  }
  assert {
    condition     = strcontains(base64decode(aws_launch_template.gpu.user_data), "/etc/spillover/etcd/agent.key\n  # root's alone, certificates too: no replica opens anything of the agent's etcd identity\n  - chmod 0700 /etc/spillover/etcd")
    error_message = "the GPU node's etcd certificates and key are root's alone, before the agent starts"
  }
  assert {
    condition     = aws_launch_template.gpu.metadata_options[0].http_protocol_ipv6 == "disabled"
    error_message = "the metadata service's IPv6 address is off: the firewall rule covers only IPv4"
  }
}

run "no_public_ingress_but_443" {
  command = apply # against the mock provider: nothing is created

  assert {
    condition = alltrue(flatten([
      for sg in [aws_security_group.edge, aws_security_group.gpu, aws_security_group.etcd] : [
        for rule in sg.ingress : rule.from_port == 443 && rule.to_port == 443 if contains(rule.cidr_blocks, "0.0.0.0/0")
      ]
    ]))
    error_message = "only 443 may be open to the internet"
  }
  assert {
    condition     = length(aws_security_group.gpu.ingress) == 0
    error_message = "GPU nodes take no inbound traffic"
  }
  assert {
    condition     = aws_lb_listener.https.port == 443
    error_message = "the NLB listens on 443"
  }
}

run "etcd_in_three_azs_with_its_own_encrypted_volumes" {
  command = apply # against the mock provider: nothing is created

  assert {
    condition     = length(toset([for i in aws_instance.etcd : i.availability_zone])) == 3
    error_message = "etcd members must be in three different AZs"
  }
  assert {
    condition     = alltrue([for v in aws_ebs_volume.etcd : v.encrypted])
    error_message = "etcd data volumes must be encrypted"
  }
}

run "payload_bucket_expires_and_is_private" {
  command = apply # against the mock provider: nothing is created

  assert {
    condition     = one(aws_s3_bucket_lifecycle_configuration.payloads.rule).expiration[0].days == 2
    error_message = "payloads must expire"
  }
  assert {
    condition     = aws_s3_bucket_public_access_block.payloads.block_public_policy && aws_s3_bucket_public_access_block.payloads.restrict_public_buckets
    error_message = "the bucket must not be public"
  }
}

run "the_autoscaler_may_size_only_its_own_group" {
  command = apply # against the mock provider: nothing is created

  assert {
    condition     = length(data.aws_iam_policy_document.autoscaler.statement) == 2
    error_message = "two statements: set capacity on its group, describe"
  }
  assert {
    condition = alltrue([
      for s in data.aws_iam_policy_document.autoscaler.statement :
      s.resources == toset([aws_autoscaling_group.gpu.arn]) if contains(s.actions, "autoscaling:SetDesiredCapacity")
    ])
    error_message = "SetDesiredCapacity must be scoped to the region's own GPU group"
  }
}

run "terraform_leaves_the_desired_count_to_the_autoscaler" {
  command = apply # against the mock provider: nothing is created

  assert {
    condition     = aws_autoscaling_group.gpu.min_size == 0 && aws_autoscaling_group.gpu.max_size == 8
    error_message = "the GPU group's bounds come from gpu_count"
  }
}

run "private_keys_reach_nodes_through_ssm_not_user_data" {
  command = apply # against the mock provider: nothing is created

  assert {
    condition = alltrue([
      for data in concat(
        [base64decode(aws_launch_template.edge.user_data), base64decode(aws_launch_template.gpu.user_data)],
        [for i in aws_instance.etcd : i.user_data],
      ) : !strcontains(data, "PRIVATE KEY")
    ])
    error_message = "no private key in any user data"
  }
  assert {
    condition = alltrue([
      strcontains(base64decode(aws_launch_template.edge.user_data), "spillover-fetch-secret eu-west-1 /sp-eu-west-1/edge-key /etc/spillover/edge.key"),
      strcontains(base64decode(aws_launch_template.edge.user_data), "spillover-fetch-secret eu-west-1 /sp-eu-west-1/etcd-edge-key /etc/spillover/etcd/edge.key"),
      strcontains(base64decode(aws_launch_template.gpu.user_data), "spillover-fetch-secret eu-west-1 /sp-eu-west-1/etcd-agent-key /etc/spillover/etcd/agent.key"),
      alltrue([for i in aws_instance.etcd : strcontains(i.user_data, "spillover-fetch-secret eu-west-1 /sp-eu-west-1/etcd-root-key /etc/spillover/etcd/root.key")]),
    ])
    error_message = "each node fetches its keys from SSM: edges their TLS and etcd keys, GPU nodes the agent's, etcd nodes root's"
  }
  assert {
    condition     = alltrue([for p in aws_ssm_parameter.secret : p.type == "SecureString"])
    error_message = "secrets are SecureStrings"
  }
  assert {
    condition = alltrue([
      for kind, doc in data.aws_iam_policy_document.secrets : alltrue([
        for st in doc.statement : st.actions == toset(["ssm:GetParameter"]) && st.resources == toset([
          for name in {
            edge = ["edge-key", "etcd-edge-key"]
            gpu  = ["etcd-agent-key"]
            etcd = ["etcd-peer-ca-key", "etcd-root-key"]
          }[kind] : aws_ssm_parameter.secret[name].arn
        ])
      ])
    ])
    error_message = "each node kind may read only its own secrets"
  }
}

run "no_node_can_mint_a_client_certificate_or_act_as_the_admin" {
  command = apply # against the mock provider: nothing is created

  assert {
    condition     = toset(keys(aws_ssm_parameter.secret)) == toset(["edge-key", "etcd-agent-key", "etcd-edge-key", "etcd-peer-ca-key", "etcd-root-key"])
    error_message = "the client CA's key is stored nowhere in AWS: no parameter but these five"
  }
  assert {
    condition     = alltrue([for p in aws_ssm_parameter.secret : p.value != var.tls.etcd_client_ca && p.value != var.tls.etcd_peer_ca])
    error_message = "no parameter holds a CA (certificates are public, and belong in user data)"
  }
  assert {
    condition = alltrue(flatten([
      for kind in ["edge", "gpu"] : [
        for st in data.aws_iam_policy_document.secrets[kind].statement : [
          for name in ["etcd-peer-ca-key", "etcd-root-key"] : !contains(st.resources, aws_ssm_parameter.secret[name].arn)
        ]
      ]
    ]))
    error_message = "no edge or GPU node may read the peer CA's key (minting a member) or root's (the admin)"
  }
  assert {
    condition = alltrue([
      for data in [base64decode(aws_launch_template.edge.user_data), base64decode(aws_launch_template.gpu.user_data)] :
      !strcontains(data, "spillover-mint-cert") && !strcontains(data, "root.pem") && !strcontains(data, "client-ca")
    ])
    error_message = "edges and GPU nodes mint nothing and hold no root certificate"
  }
  assert {
    condition     = alltrue([for i in aws_instance.etcd : strcontains(i.user_data, "spillover-mint-cert member IP:") && strcontains(i.user_data, "rm /etc/spillover/etcd/peer-ca.key")])
    error_message = "etcd members mint their own certificate from the peer CA once, then delete its key"
  }
}

run "the_peer_ca_must_not_be_the_client_ca" {
  command = plan

  variables {
    tls = merge(var.tls, { etcd_peer_ca = var.tls.etcd_client_ca })
  }
  expect_failures = [var.tls]
}

run "etcd_runs_rbac_with_the_roles_and_separate_cas" {
  command = apply # against the mock provider: nothing is created

  assert {
    condition = alltrue([for i in aws_instance.etcd : alltrue([
      strcontains(i.user_data, "--trusted-ca-file /etc/spillover/etcd/client-ca.pem --client-cert-auth"),
      strcontains(i.user_data, "--peer-trusted-ca-file /etc/spillover/etcd/peer-ca.pem --peer-client-cert-auth"),
      strcontains(i.user_data, "ExecStart=/opt/spillover/bin/spillover etcd-rbac"),
      strcontains(i.user_data, "ExecStart=/opt/spillover/bin/spillover etcd-keeper"),
      strcontains(i.user_data, "SPILLOVER_ETCD_CERT=/etc/spillover/etcd/root.pem"),
    ])])
    error_message = "members trust the client CA for clients and the peer CA for peers, apply the roles at boot and keep storage as root"
  }
  assert {
    condition = alltrue([
      strcontains(base64decode(aws_launch_template.edge.user_data), "cert_file = \"/etc/spillover/etcd/edge.pem\""),
      strcontains(base64decode(aws_launch_template.gpu.user_data), "cert_file = \"/etc/spillover/etcd/agent.pem\""),
      strcontains(base64decode(aws_launch_template.edge.user_data), "ca_file = \"/etc/spillover/etcd/peer-ca.pem\""),
    ])
    error_message = "edges are etcd's edge user, GPU nodes its agent user, and both trust the members' CA"
  }
  assert {
    condition = alltrue([for i in aws_instance.etcd : alltrue([
      strcontains(i.user_data, "releases/download/v3.6.12/etcd-v3.6.12-linux-"),
      strcontains(i.user_data, "echo \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  /tmp/etcd.tar.gz\" | sha256sum -c -"),
      !strcontains(i.user_data, "etcd-server"),
    ])])
    error_message = "members run the pinned etcd release, checked by its sha256, not Debian's etcd-server 3.4.23"
  }
}

run "an_etcd_release_that_does_not_enforce_rbac_is_refused" {
  command = plan

  variables {
    etcd_release = { version = "3.4.23", sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" }
  }
  expect_failures = [var.etcd_release]
}

run "etcd_has_a_quota_and_every_node_knows_it" {
  command = apply

  variables {
    etcd_quota_gb = 4
  }

  assert {
    condition     = alltrue([for i in aws_instance.etcd : strcontains(i.user_data, "--quota-backend-bytes 4294967296") && strcontains(i.user_data, "--auto-compaction-retention")])
    error_message = "every etcd member must run with the quota and auto-compaction"
  }
  assert {
    condition = alltrue([for t in [aws_launch_template.edge, aws_launch_template.gpu] :
    strcontains(base64decode(t.user_data), "quota_bytes = 4294967296")])
    error_message = "edges and agents must know the quota their storage watermark is measured against"
  }
}

run "a_quota_the_volume_cannot_defragment_is_refused" {
  command = plan

  variables {
    etcd_quota_gb  = 8
    etcd_volume_gb = 10
  }
  expect_failures = [var.etcd_quota_gb]
}

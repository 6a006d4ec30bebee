"""``spillover etcd-certs``: two CAs, a client certificate per etcd user, keys only their owner
reads; and how the admin's TLS settings come from the environment."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.etcd_certs import main
from federation.etcd_rbac import USERS
from federation.topology import EtcdConfig


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_two_cas_a_client_certificate_per_user_and_keys_only_the_owner_reads(
    tmp_path: Path,
) -> None:
    out = tmp_path / "certs"
    main(["--out", str(out), "--member-ip", "127.0.0.1"])
    client_ca, peer_ca = cert(out / "client-ca.pem"), cert(out / "peer-ca.pem")
    assert client_ca.subject != peer_ca.subject
    for user in USERS:
        c = cert(out / f"{user}.pem")
        assert c.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == user
        assert c.issuer == client_ca.subject
        c.verify_directly_issued_by(client_ca)
        usages = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    member = cert(out / "member.pem")
    member.verify_directly_issued_by(peer_ca)
    sans = member.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    keys = sorted(p.name for p in out.glob("*.key"))
    assert keys == sorted(["client-ca.key", "peer-ca.key", "member.key",
                           *(f"{u}.key" for u in USERS)])  # fmt: skip
    assert all(stat.S_IMODE((out / k).stat().st_mode) == 0o600 for k in keys)


def test_certificates_are_issued_once(tmp_path: Path) -> None:
    main(["--out", str(tmp_path / "certs")])
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "certs")])


def test_the_admin_tls_settings_come_from_etcdctl_s_names() -> None:
    env = {"SPILLOVER_ETCD_ENDPOINTS": "https://10.0.0.1:2379",
           "SPILLOVER_ETCD_CACERT": "/c/ca.pem", "SPILLOVER_ETCD_CERT": "/c/root.pem",
           "SPILLOVER_ETCD_KEY": "/c/root.key"}  # fmt: skip
    config = EtcdConfig.from_env(env)
    assert config.tls is not None and config.tls.cert_file == Path("/c/root.pem")
    assert EtcdConfig.from_env({}).tls is None

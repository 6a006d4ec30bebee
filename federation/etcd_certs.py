"""Certificates for etcd with client-certificate auth and RBAC, issued in one step.

Two CAs, never one: the **client CA** signs the certificates clients present (their CN is their
etcd user: ``root``, ``edge``, ``agent``; ``etcd_rbac.py``), the **peer CA** signs the members'
own certificates (what members show each other and their clients). A client certificate can
then never join the cluster as a peer (a peer holds every key), and no member certificate can
act as a user.

``spillover etcd-certs --out DIR`` is the bootstrap step of a deployment: it writes both CAs and
the three client certificates with their keys (0600). The client CA's key is needed by nobody
afterwards: keep it offline, or delete it; a node that held it could mint itself a ``root``
certificate. ``spillover up --auth`` mints the same set (and the local member's certificate)
into its data directory.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from federation.etcd_rbac import USERS

CA_DAYS = 3650
LEAF_DAYS = 825  # what browsers accept for a leaf; etcd does not care, rotation should


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _builder(subject: str, issuer: x509.Name | None, key: ec.EllipticCurvePrivateKey,
             days: int) -> x509.CertificateBuilder:  # fmt: skip
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # a little clock skew
        .not_valid_after(now + datetime.timedelta(days=days))
    )


_CA_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
    key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
    decipher_only=False,
)  # fmt: skip


def new_ca(name: str, days: int = CA_DAYS) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(name, None, key, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(
    ca: Issued, cn: str, *, ips: tuple[str, ...] = (), server: bool = False, days: int = LEAF_DAYS
) -> Issued:
    """A leaf signed by ``ca``: a client certificate (CN = etcd user), or with ``server`` a
    member's (server and client auth: members dial each other) valid for ``ips``."""
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        _builder(cn, ca.cert.subject, key, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if ips:
        names = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def write_private(path: Path, data: bytes) -> None:
    """A file only its owner may read, from its first byte (no window in which another user
    could open it)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write(directory: Path, name: str, issued: Issued) -> tuple[Path, Path]:
    """``name.pem`` (0644) and ``name.key`` (0600)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(issued.cert_pem)
    write_private(key, issued.key_pem)
    return cert, key


def bootstrap(directory: Path, member_ips: tuple[str, ...] = ()) -> None:
    """Both CAs and a client certificate per etcd user into ``directory`` (0700); with
    ``member_ips``, also one member certificate (``member``) valid for them."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)  # mkdir's mode does not apply to a directory that was there
    client_ca, peer_ca = new_ca("spillover-etcd-client-ca"), new_ca("spillover-etcd-peer-ca")
    write(directory, "client-ca", client_ca)
    write(directory, "peer-ca", peer_ca)
    for user in USERS:
        write(directory, user, issue(client_ca, user))
    if member_ips:
        write(directory, "member", issue(peer_ca, "member", ips=member_ips, server=True))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="spillover etcd-certs",
        description="Issue the etcd CAs and client certificates of a deployment (once).",
    )
    ap.add_argument("--out", type=Path, required=True, help="a new directory for the files")
    ap.add_argument("--member-ip", action="append", default=[], metavar="IP",
                    help="also a member certificate for this IP (repeat for several)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        ap.error(f"--out: {args.out} is not empty (certificates are issued once)")
    bootstrap(args.out, tuple(args.member_ip))
    print(f"wrote {args.out}/: client-ca, peer-ca, {', '.join(USERS)} (.pem and .key).\n"
          f"Keep client-ca.key offline or delete it: whoever holds it can mint a root "
          f"certificate.")  # fmt: skip


if __name__ == "__main__":
    main()

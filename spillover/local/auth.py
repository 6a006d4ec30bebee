"""``spillover up --auth``: the local federation's etcd as production runs it — TLS with a client
certificate per process kind and the RBAC roles (``etcd_rbac.py``).

The certificates are minted once into ``<data>/tls/`` (keys 0600): the agents connect as
``agent``, the edge as ``edge``; the admin (``spillover keys``, ``spillover deploy --etcd``, the
storage keeper) as ``root``, with the settings ``<data>/admin.env`` exports. Every process here
runs as your user and could read every key in that directory: locally the roles rehearse the
deployment, they do not protect one of your processes from another.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from federation.etcd_certs import bootstrap, write_private
from federation.etcd_rbac import ROOT
from federation.etcd_tls import EtcdTls
from spillover.local.etcd import ServerTls


@dataclass(frozen=True)
class LocalAuth:
    certs: Path

    @classmethod
    def prepare(cls, data: Path) -> LocalAuth:
        """The data directory's certificates, minted on its first ``--auth`` run."""
        certs = data / "tls"
        if not (certs / "member.pem").exists():
            bootstrap(certs, member_ips=("127.0.0.1",))
        return cls(certs)

    @staticmethod
    def was_on(data: Path) -> bool:
        """Whether ``data``'s etcd has auth on (it refuses every plain client then)."""
        return (data / "tls").is_dir() and (data / "etcd").is_dir()

    def tls(self, user: str) -> EtcdTls:
        """What a process of ``user``'s kind presents; it trusts the member's CA."""
        c = self.certs
        return EtcdTls(ca_file=c / "peer-ca.pem", cert_file=c / f"{user}.pem",
                       key_file=c / f"{user}.key")  # fmt: skip

    def server(self) -> ServerTls:
        c = self.certs
        return ServerTls(c / "client-ca.pem", c / "member.pem", c / "member.key", self.tls(ROOT))

    def admin_env(self, endpoints: list[str]) -> dict[str, str]:
        """``SPILLOVER_ETCD_*``: how ``spillover keys``, ``deploy --etcd`` and the keeper
        connect as root."""
        admin = self.tls(ROOT)
        return {
            "SPILLOVER_ETCD_ENDPOINTS": ",".join(endpoints),
            "SPILLOVER_ETCD_CACERT": str(admin.ca_file),
            "SPILLOVER_ETCD_CERT": str(admin.cert_file),
            "SPILLOVER_ETCD_KEY": str(admin.key_file),
        }

    def apply_rbac(self, endpoints: list[str]) -> None:
        """``spillover etcd-rbac``, as an operator runs it (a process of its own: ``up`` must
        not open a gRPC channel before it has spawned its children)."""
        env = {**os.environ, **self.admin_env(endpoints)}
        subprocess.run([sys.executable, "-m", "spillover", "etcd-rbac", "--wait", "30"], env=env,
                       check=True)  # fmt: skip

    def write_env(self, path: Path, endpoints: list[str], api_key: str) -> None:
        """``<data>/admin.env`` (0600): ``. admin.env`` makes a shell the admin."""
        lines = [f"export {k}={v}" for k, v in self.admin_env(endpoints).items()]
        text = "\n".join([*lines, f"export SPILLOVER_API_KEY={api_key}"]) + "\n"
        write_private(path, text.encode())

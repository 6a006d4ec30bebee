"""Local etcd processes: one member or a cluster on free loopback ports, each member's data in its
own directory. Used by ``spillover up``, the benchmarks and the test fixtures; faults are real
(SIGKILL, stop, restart on the same data). Part of the local composition, not of the core: no
deployed node starts its own etcd."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from federation.etcd_tls import EtcdTls
from federation.proc import die_with_parent


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def etcd_version(binary: str | None = None) -> str:
    """The version of the ``etcd`` binary (``3.4.23``): which RBAC holes it has
    (``etcd_rbac.known_holes``)."""
    found = binary or shutil.which("etcd") or "etcd"
    out = subprocess.run([found, "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("etcd Version:", 1)[1].split()[0]


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    scheme: str = "http"

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"


@dataclass(frozen=True)
class ServerTls:
    """Clients over TLS with client certificates (``--client-cert-auth``), as in production."""

    ca_file: Path
    cert_file: Path  # the members' certificate, for 127.0.0.1
    key_file: Path
    client: EtcdTls  # what clients present (the health checks here too)


class LocalEtcd:
    """``with LocalEtcd(tmp, members=3) as cluster: cluster.endpoints``"""

    def __init__(
        self,
        base_dir: Path,
        *,
        members: int = 1,
        binary: str | None = None,
        compaction_retention: str = "5m",
        quiet: bool = True,
        first_port: int | None = None,
        die_with_parent: bool = False,
        tls: ServerTls | None = None,
        quota_bytes: int | None = None,
        flags: tuple[str, ...] = (),
    ) -> None:
        """``first_port``: member i listens on first_port + 2i (clients) and + 2i + 1 (peers);
        default: free ports. ``die_with_parent``: members die with this process (only from a
        process without threads yet; see :func:`federation.proc.die_with_parent`).
        ``quota_bytes``: ``--quota-backend-bytes`` (etcd's default, 2 GiB, when None);
        ``flags``: more of etcd's own (a test's ``--max-request-bytes``)."""
        self.binary = binary or shutil.which("etcd") or ""
        if not self.binary:
            raise FileNotFoundError("etcd is not on PATH (Debian: apt-get install etcd-server)")
        self.base_dir = Path(base_dir)
        self.compaction_retention = compaction_retention
        self.quiet = quiet
        self.token = f"spillover-{os.getpid()}-{free_port()}"
        self.die_with_parent = die_with_parent
        self.quota_bytes = quota_bytes
        self.flags = flags

        def ports(i: int) -> tuple[int, int]:
            if first_port is None:
                return free_port(), free_port()
            return first_port + 2 * i, first_port + 2 * i + 1

        scheme = "http" if tls is None else "https"
        self.tls = tls
        self.members = [Member(f"m{i}", *ports(i), self.base_dir / f"m{i}", scheme=scheme)
                        for i in range(members)]  # fmt: skip
        self._initialized: set[str] = set()

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def _command(self, m: Member) -> list[str]:
        cluster = ",".join(f"{x.name}=http://127.0.0.1:{x.peer_port}" for x in self.members)
        state = "existing" if m.name in self._initialized else "new"
        return [
            self.binary,
            f"--name={m.name}",
            f"--data-dir={m.data_dir}",
            f"--listen-client-urls={m.endpoint}",
            f"--advertise-client-urls={m.endpoint}",
            f"--listen-peer-urls=http://127.0.0.1:{m.peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{m.peer_port}",
            f"--initial-cluster={cluster}",
            f"--initial-cluster-state={state}",
            f"--initial-cluster-token={self.token}",
            # History grows ~4 revisions per task; without compaction the 2 GiB quota fills.
            "--auto-compaction-mode=periodic",
            f"--auto-compaction-retention={self.compaction_retention}",
            # Loopback peers: a short election timeout makes failover take ~0.5 s, not 1 s+.
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--log-level=warn",
            *([f"--quota-backend-bytes={self.quota_bytes}"] if self.quota_bytes else []),
            *self._tls_flags(),
            *self.flags,
        ]

    def _tls_flags(self) -> list[str]:
        if self.tls is None:
            return []
        t = self.tls
        return [f"--cert-file={t.cert_file}", f"--key-file={t.key_file}",
                f"--trusted-ca-file={t.ca_file}", "--client-cert-auth"]  # fmt: skip

    def _health_context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        c = self.tls.client
        context = ssl.create_default_context(cafile=str(c.ca_file))
        if c.cert_file is not None:
            context.load_cert_chain(str(c.cert_file), str(c.key_file) if c.key_file else None)
        return context

    def start_member(self, i: int) -> None:
        m = self.members[i]
        m.data_dir.mkdir(parents=True, exist_ok=True)
        out = subprocess.DEVNULL if self.quiet else None
        hook = functools.partial(die_with_parent, os.getpid()) if self.die_with_parent else None
        m.process = subprocess.Popen(self._command(m), stdout=out, stderr=out, preexec_fn=hook)
        self._initialized.add(m.name)

    def start(self, timeout: float = 30.0) -> LocalEtcd:
        for i in range(len(self.members)):
            self.start_member(i)
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 30.0, members: list[int] | None = None) -> None:
        deadline = time.monotonic() + timeout
        context = self._health_context()
        for i in members if members is not None else range(len(self.members)):
            m = self.members[i]
            while True:
                if m.process is not None and m.process.poll() is not None:
                    raise RuntimeError(f"etcd member {m.name} exited with {m.process.returncode}")
                try:
                    url = f"{m.endpoint}/health"
                    with urllib.request.urlopen(url, timeout=1, context=context) as r:
                        if b'"health":"true"' in r.read():
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"etcd member {m.name} not healthy after {timeout} s")
                time.sleep(0.05)

    def kill(self, i: int) -> None:
        """SIGKILL one member: no goodbye to its peers, as in a crash."""
        self._signal(i, signal.SIGKILL)

    def stop(self, i: int) -> None:
        self._signal(i, signal.SIGTERM)

    def _signal(self, i: int, sig: signal.Signals) -> None:
        p = self.members[i].process
        if p is not None and p.poll() is None:
            p.send_signal(sig)
            p.wait(timeout=30)
        self.members[i].process = None

    def restart(self, i: int, timeout: float = 30.0) -> None:
        self.stop(i)
        self.start_member(i)
        self.wait_healthy(timeout, [i])

    def close(self) -> None:
        for i in range(len(self.members)):
            self.kill(i)

    def __enter__(self) -> LocalEtcd:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A handler that tries what a hostile one would: who it runs as, which files and sockets it can
open, whether it reaches etcd. Each function answers what happened, never raises."""

from __future__ import annotations

import json
import os
import socket
from typing import Any


def _attempt(fn: Any) -> dict[str, Any]:
    try:
        return {"ok": True, "got": fn()}
    except Exception as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


class Snoop:
    def whoami(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        secret_env = sorted(k for k in os.environ if k.startswith(("SPILLOVER_ETCD", "AWS_")))
        home = os.environ["HOME"]
        with open(os.path.join(home, "made-by-the-handler"), "w") as f:
            f.write("x")
        mode = os.stat(f.name).st_mode & 0o777
        return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
                "groups": os.getgroups(), "env": secret_env, "cwd": os.getcwd(),
                "home": home, "file_mode": mode}  # fmt: skip

    def read(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        """``{"path": p}``: its first bytes, or why not."""
        path = json.loads(payload)["path"]
        return _attempt(lambda: open(path, "rb").read(16).hex())

    def connect(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        """``{"path": p}``: a connection to a Unix socket, or why not."""
        path = json.loads(payload)["path"]

        def dial() -> str:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
            return "connected"

        return _attempt(dial)

    async def etcd(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        """``{"endpoint", "ca", "key"}``: read ``key`` with Spillover's own etcd client,
        trusting the members' CA (public) but with no client key of its own to show."""
        from federation.etcd import Etcd
        from federation.etcd_tls import EtcdTls

        args = json.loads(payload)
        etcd = Etcd([args["endpoint"]], timeout=3, tls=EtcdTls(ca_file=args["ca"]))
        try:
            kv = await etcd.get(args["key"].encode())
            return {"ok": True, "got": None if kv is None else kv.value.decode()}
        except Exception as e:
            return {"ok": False, "error": f"{type(e).__name__}: {e}"}
        finally:
            await etcd.close()

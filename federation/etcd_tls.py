"""etcd over TLS, with a client certificate: what a production cluster runs (the Terraform
module starts members with ``--client-cert-auth``).

aetcd 1.0 only opens plaintext channels, so :class:`TlsClient` opens a TLS one and sets up the
same stubs its ``connect`` does; everything else (calls, watches, error translation) is aetcd's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aetcd
import grpc
from aetcd import rpc, watcher
from pydantic import BaseModel, ConfigDict


class EtcdTls(BaseModel):
    """``[etcd.tls]``: PEM files. The CA that signed the members' certificates, and this
    process's client certificate and key (required by members run with client-cert-auth; with
    etcd RBAC on, the certificate's CN is this process's etcd user: ``etcd_rbac.py``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        def read(p: Path | None) -> bytes | None:
            return p.read_bytes() if p is not None else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


class TlsClient(aetcd.Client):  # type: ignore[misc]  # aetcd is untyped
    def __init__(self, host: str, port: int, credentials: grpc.ChannelCredentials, **kw: Any):
        super().__init__(host, port, **kw)
        self._credentials = credentials

    async def connect(self) -> None:
        """aetcd's ``connect`` (no username/password auth), over a TLS channel."""
        if self._connected.is_set():
            return
        if self._is_connecting:  # type: ignore[has-type]  # set by aetcd
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            target = f"{self._host}:{self._port}"
            options = self._options.items()
            self.channel = grpc.aio.secure_channel(target, self._credentials, options=options)
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self.auth_stub = rpc.AuthStub(self.channel)  # users and roles (``etcd_rbac.py``)
            self._watcher = watcher.Watcher(
                rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata
            )
            self._connected.set()
        finally:
            self._is_connecting = False

"""Where things live: the control cluster, and the cluster that holds each region's partition.

By default every partition sits in the control cluster (what ``spillover up`` runs). In production
each region's partition lives in that region's own etcd, so an enqueue is a local round trip
(~1 ms), not a cross-continent Raft quorum (50-400 ms), and one region's etcd outage stops only
its partition.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from federation.appspec import describe
from federation.errors import InvalidConfig
from federation.etcd import Etcd
from federation.etcd_tls import EtcdTls
from federation.keys import DEFAULT_ROOT
from federation.metrics import FederationMetrics

DEFAULT_ENDPOINTS = ("http://127.0.0.1:2379",)


class EtcdConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoints: tuple[str, ...] = Field(default=DEFAULT_ENDPOINTS, min_length=1)
    # region -> endpoints of the cluster holding that region's partition
    partitions: dict[str, tuple[str, ...]] = {}
    root: str = Field(default=DEFAULT_ROOT, pattern=r"^/[A-Za-z0-9_/-]*[A-Za-z0-9_-]$")
    timeout: float = Field(default=5.0, gt=0)
    tls: EtcdTls | None = None  # required for https:// endpoints
    # Each cluster's --quota-backend-bytes (etcd's default: 2 GiB). Above high_watermark of it
    # new tasks are refused (503 storage_full) and finished ones swept early, until the db is
    # back under low_watermark (``storage.py``).
    quota_bytes: int = Field(default=2 << 30, ge=1 << 20)
    high_watermark: float = Field(default=0.8, gt=0, lt=1)
    low_watermark: float = Field(default=0.7, gt=0, lt=1)

    @model_validator(mode="after")
    def _watermarks(self) -> EtcdConfig:
        if self.low_watermark >= self.high_watermark:
            raise ValueError(f"low_watermark = {self.low_watermark} must be < high_watermark = "
                             f"{self.high_watermark}")  # fmt: skip
        return self

    @model_validator(mode="after")
    def _https_needs_tls(self) -> EtcdConfig:
        every = [*self.endpoints, *(e for eps in self.partitions.values() for e in eps)]
        if self.tls is None and any(e.startswith("https://") for e in every):
            raise ValueError("https:// endpoints need [etcd.tls] (ca_file, cert_file, key_file)")
        return self

    @classmethod
    def from_env(cls, env: Mapping[str, str], **overrides: object) -> EtcdConfig:
        """``SPILLOVER_ETCD_ENDPOINTS`` is a comma list; the default is the local etcd.
        ``SPILLOVER_ETCD_CACERT``, ``_CERT`` and ``_KEY`` (etcdctl's names) are the TLS files:
        the admin certificate for ``spillover keys``, ``deploy --etcd`` and ``etcd-rbac``."""
        raw = env.get("SPILLOVER_ETCD_ENDPOINTS", "")
        endpoints = tuple(e.strip() for e in raw.split(",") if e.strip()) or DEFAULT_ENDPOINTS
        data: dict[str, object] = {"endpoints": endpoints}
        if ca := env.get("SPILLOVER_ETCD_CACERT"):
            tls = {"ca_file": ca, "cert_file": env.get("SPILLOVER_ETCD_CERT"),
                   "key_file": env.get("SPILLOVER_ETCD_KEY")}  # fmt: skip
            data["tls"] = {k: v for k, v in tls.items() if v}
        return cls.model_validate({**data, **overrides})


class Clusters:
    """One :class:`Etcd` client per distinct cluster, shared by the partitions that live there.

    Each cluster has a name: ``control`` for the control cluster (and the partitions that live in
    it), else the regions whose partitions it holds, joined by ``+`` (``eu-west-1``). Sessions and
    group commits are kept per cluster name."""

    CONTROL = "control"

    def __init__(self, config: EtcdConfig, metrics: FederationMetrics | None = None) -> None:
        self.config = config
        self.root = config.root
        self._by_endpoints: dict[tuple[str, ...], Etcd] = {}
        self._metrics = metrics
        self.control = self._client(config.endpoints)

    def _name(self, endpoints: tuple[str, ...]) -> str:
        if endpoints == self.config.endpoints:
            return self.CONTROL
        return "+".join(sorted(p for p, e in self.config.partitions.items() if e == endpoints))

    def _client(self, endpoints: tuple[str, ...]) -> Etcd:
        if endpoints not in self._by_endpoints:
            self._by_endpoints[endpoints] = Etcd(
                endpoints, timeout=self.config.timeout, metrics=self._metrics,
                tls=self.config.tls, name=self._name(endpoints),
            )  # fmt: skip
        return self._by_endpoints[endpoints]

    def for_partition(self, partition: str) -> Etcd:
        return self._client(self.config.partitions.get(partition, self.config.endpoints))

    def named(self) -> dict[str, Etcd]:
        """Every cluster by name: ``control`` (which may hold partitions too), else the regions
        whose partitions it holds (``eu-west-1``, or ``ap-south-1+eu-west-1``)."""
        for endpoints in {self.config.endpoints, *self.config.partitions.values()}:
            self._client(endpoints)
        return {etcd.name: etcd for etcd in self._by_endpoints.values()}

    def name_of(self, partition: str) -> str:
        """The name of the cluster that holds ``partition``."""
        return self.for_partition(partition).name

    async def close(self) -> None:
        for etcd in self._by_endpoints.values():
            await etcd.close()


Config = TypeVar("Config", bound=BaseModel)


def load_config(model: type[Config], path: Path, env: Mapping[str, str]) -> Config:
    """A component's TOML config file, validated; ``SPILLOVER_ETCD_ENDPOINTS`` fills in ``[etcd]``
    when the file has none. Errors name the file, key, value and rule."""
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise InvalidConfig(f"{path}: {e}") from None
    if "etcd" not in data and "SPILLOVER_ETCD_ENDPOINTS" in env:
        data["etcd"] = EtcdConfig.from_env(env).model_dump()
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise InvalidConfig(f"{path}: {describe(e)}") from None

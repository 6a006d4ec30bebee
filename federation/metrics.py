"""Prometheus metrics of the federation core, on an injected registry (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, Histogram

# etcd round trips are ~1 ms on one local member and 50-400 ms across a WAN.
_ETCD_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class FederationMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.etcd_request_seconds = Histogram(
            "spillover_etcd_request_seconds",
            "Latency of etcd requests, by operation",
            ["op"],
            registry=registry,
            buckets=_ETCD_BUCKETS,
        )
        self.etcd_db_size_bytes = Gauge(
            "spillover_etcd_db_size_bytes",
            "Size of the etcd db file (what its quota counts), fullest member",
            ["cluster"],
            registry=registry,
        )
        self.etcd_quota_bytes = Gauge(
            "spillover_etcd_quota_bytes",
            "The etcd cluster's --quota-backend-bytes, as configured",
            ["cluster"],
            registry=registry,
        )
        self.etcd_storage_level = Gauge(
            "spillover_etcd_storage_level",
            "1 for the cluster's storage level (ok, high: new tasks refused, nospace: alarm)",
            ["cluster", "level"],
            registry=registry,
        )

    def storage(self, cluster: str, db_size: int, quota: int, level: str) -> None:
        self.etcd_db_size_bytes.labels(cluster).set(db_size)
        self.etcd_quota_bytes.labels(cluster).set(quota)
        for name in ("ok", "high", "nospace"):
            self.etcd_storage_level.labels(cluster, name).set(1 if name == level else 0)

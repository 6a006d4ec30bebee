"""Prometheus metrics of the federation core, on an injected registry (never the global one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram

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

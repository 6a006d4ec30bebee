"""The edge's Prometheus metrics, on an injected registry."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.submitted = Counter(
            "spillover_tasks_submitted_total",
            "Tasks accepted (stored durably) by this edge",
            ["app", "region"],
            registry=registry,
        )
        self.refused = Counter(
            "spillover_tasks_refused_total",
            "Submits refused before anything was stored, by error code (queue_full, "
            "rate_limited, storage_full, unavailable)",
            ["app", "code"],
            registry=registry,
        )
        self.region_up = Gauge(
            "spillover_region_up",
            "1 while the region has a live heartbeat in etcd (an agent holds its lease), else 0",
            ["region"],
            registry=registry,
        )

    def regions(self, configured: Iterable[str], live: Iterable[str]) -> None:
        """Set at each scrape from the edge's view of the heartbeats: never stale."""
        up = set(live)
        for name in {*configured, *up}:
            self.region_up.labels(name).set(1 if name in up else 0)

"""The edge's Prometheus metrics, on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


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

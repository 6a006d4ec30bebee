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

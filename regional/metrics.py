"""A region's Prometheus metrics, on an injected registry; the agent serves them on
``metrics_port``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from federation.heartbeat import AppLoad
from federation.task import TaskRecord

# Queue waits run from milliseconds (idle capacity) to minutes (a backlog); runs likewise.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class RegionMetrics:
    def __init__(self, registry: CollectorRegistry, region: str) -> None:
        self.registry = registry
        self.region = region
        labels = ["app", "region"]
        self.completed = Counter(
            "spillover_tasks_completed_total", "Tasks this region finished, by final state",
            [*labels, "state"], registry=registry,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "spillover_queue_wait_seconds", "From accepted to started, of tasks this region ran",
            labels, registry=registry, buckets=_SECONDS,
        )  # fmt: skip
        self.run = Histogram(
            "spillover_run_seconds", "From started to finished, of tasks this region ran",
            labels, registry=registry, buckets=_SECONDS,
        )  # fmt: skip
        self.spillover = Counter(
            "spillover_spillover_total", "Tasks this region took from another region's partition",
            ["app", "from", "to"], registry=registry,
        )  # fmt: skip
        self.queue_depth = Gauge("spillover_queue_depth", "Queued tasks this region may take now",
                                 labels, registry=registry)  # fmt: skip
        self.replicas = Gauge("spillover_replicas", "Replicas, by state", [*labels, "state"],
                              registry=registry)  # fmt: skip
        self.slots = Gauge("spillover_slots", "Concurrency slots of ready replicas",
                           [*labels, "state"], registry=registry)  # fmt: skip
        # A rate that keeps rising is a crash loop.
        self.replica_exits = Counter(
            "spillover_replica_exits_total", "Replicas that died without being asked to stop "
            "(exited, or broke a task's call)", labels, registry=registry,
        )  # fmt: skip
        self.desired = Gauge(
            "spillover_autoscaler_desired_replicas", "Replicas the autoscaler asks for",
            labels, registry=registry,
        )  # fmt: skip
        # One per app per tick: its rate by reason is the share of the time spent on each.
        self.decisions = Counter(
            "spillover_autoscaler_decisions_total", "Autoscaler decisions, by reason",
            [*labels, "reason"], registry=registry,
        )  # fmt: skip

    def started(self, record: TaskRecord) -> None:
        if record.started_at is not None:
            self.queue_wait.labels(record.app, self.region).observe(
                record.started_at - record.created_at
            )
        if record.partition != self.region:
            self.spillover.labels(record.app, record.partition, self.region).inc()

    def finished(self, record: TaskRecord) -> None:
        self.completed.labels(record.app, self.region, record.state.value).inc()
        if record.started_at is not None and record.finished_at is not None:
            self.run.labels(record.app, self.region).observe(record.finished_at - record.started_at)

    def load(self, loads: tuple[AppLoad, ...]) -> None:
        """The gauges, from the heartbeat the agent just computed (one source for both)."""
        for a in loads:
            self.queue_depth.labels(a.app, self.region).set(a.queue_depth)
            self.replicas.labels(a.app, self.region, "ready").set(a.ready_replicas)
            self.replicas.labels(a.app, self.region, "starting").set(a.replicas - a.ready_replicas)
            self.slots.labels(a.app, self.region, "busy").set(a.busy_slots)
            self.slots.labels(a.app, self.region, "free").set(a.slots - a.busy_slots)

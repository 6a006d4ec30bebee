"""The Celery side: the benchmark workload as Celery tasks, on a Redis broker and result backend
(``BENCH_REDIS``). Settings come from the environment so each run states them:
``BENCH_PREFETCH`` (worker_prefetch_multiplier, Celery's default 4) and ``BENCH_ACKS_LATE``."""

# mypy: disable-error-code=untyped-decorator
# (Celery's decorators are untyped.)
from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from benchmarks.probe import run

redis = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
app = Celery("bench", broker=redis, backend=redis)
app.conf.update(
    worker_prefetch_multiplier=int(os.environ.get("BENCH_PREFETCH", "4")),
    task_acks_late=os.environ.get("BENCH_ACKS_LATE") == "1",
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
_model: Any = None


@worker_process_init.connect
def _load(**_: Any) -> None:
    """The demo model, once per prefork process (that is how Celery serves a model)."""
    global _model
    if os.environ.get("BENCH_MODEL") == "1":
        from spillover.demo.app import Model

        _model = Model()
        _model.load()


@app.task(name="stamp")
def stamp() -> dict[str, float]:
    import time

    return {"started": time.time()}


@app.task(name="work")
def work(key: str, seconds: float) -> dict[str, float]:
    return run(key, seconds)


@app.task(name="echo")
def echo(body: str) -> str:
    """The payload benchmark: a body as Celery users send bytes with the JSON serializer."""
    return body


@app.task(name="predict")
def predict(rows: list[list[float]]) -> dict[str, Any]:
    import torch

    with torch.no_grad():
        out = _model.net(torch.tensor(rows, dtype=torch.float32))
    return {"outputs": out.tolist()}

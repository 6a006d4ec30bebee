"""Small builders shared by tests."""

from __future__ import annotations

import time

from federation.task import TaskRecord, new_task_id


def task(
    partition: str = "us-east-1",
    *,
    app: str = "demo",
    now: float | None = None,
    grace: float = 3600.0,
    **fields: object,
) -> TaskRecord:
    now = time.time() if now is None else now
    values: dict[str, object] = {
        "id": new_task_id(partition),
        "app": app,
        "function": "echo",
        "home_region": partition,
        "created_at": now,
        "deadline": now + grace,
    }
    values.update(fields)
    return TaskRecord.model_validate(values)

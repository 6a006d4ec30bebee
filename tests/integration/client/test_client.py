"""``spillover.Client`` and ``AsyncClient`` against a real federation (``spillover up``: etcd,
an agent with replica subprocesses, an edge)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

import spillover
from spillover import LogEvent, ProgressEvent, StateEvent
from tests.integration.client.conftest import Federation

pytestmark = pytest.mark.slow
UNKNOWN = "01J00000000000000000000000.us-east-1"


@pytest.fixture
def client(federation: Federation) -> Iterator[spillover.Client]:
    with spillover.Client(federation.url, retry_for=10) as c:
        yield c


def started(task: spillover.Task, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while task.status().state != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_run_returns_json_as_a_dict_and_other_bodies_as_bytes(client: spillover.Client) -> None:
    out = client.run("worker", "sleep", {"seconds": 0.2})
    assert out["slept"] == 0.2 and out["region"] == "us-east-1"
    assert client.run("worker", "echo", b"\x00\xff raw") == b"\x00\xff raw"
    pinned = client.run("worker", "echo", b"x", region="us-east-1", prefer_region="us-east-1",
                        priority=9)  # fmt: skip
    assert pinned == b"x"


def test_url_and_key_come_from_the_environment(
    federation: Federation, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPILLOVER_URL", federation.url + "/")
    monkeypatch.setenv("SPILLOVER_API_KEY", "sk_test")
    with spillover.Client() as c:  # the edge runs without auth: the key is sent, not needed
        assert c.settings.url == federation.url
        assert c.settings.headers()["Authorization"] == "Bearer sk_test"
        assert c.run("worker", "echo", b"from the env") == b"from the env"


def test_submit_then_status_result_and_reattach(client: spillover.Client) -> None:
    task = client.submit("worker", "sleep", {"seconds": 1})
    assert task.status().state in ("queued", "running") and not task.status().done
    same = client.task(task.id)
    assert same.result(timeout=30)["slept"] == 1
    status = task.status()
    assert (status.state, status.done, status.app, status.function) == (
        "succeeded", True, "worker", "sleep")  # fmt: skip


def test_events_of_a_task_that_reports_progress(client: spillover.Client) -> None:
    task = client.submit("worker", "steps", {"n": 4, "seconds": 1})
    events = list(task.events())
    fractions = [e.fraction for e in events if isinstance(e, ProgressEvent)]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert [e.message for e in events if isinstance(e, ProgressEvent)][-1] == "step 4 of 4"
    lines = [e.line for e in events if isinstance(e, LogEvent)]
    assert lines == [f"finished step {i}" for i in range(1, 5)]
    states = [e.status.state for e in events if isinstance(e, StateEvent)]
    assert states[-1] == "succeeded" and isinstance(events[-1], StateEvent)
    assert len(states) == len(set(states))  # each change once
    # A late reader gets the outcome at once.
    assert [type(e) for e in task.events()][-1] is StateEvent


def test_cancel_a_running_task(client: spillover.Client) -> None:
    task = client.submit("worker", "sleep", {"seconds": 30})
    started(task)
    assert task.cancel().state == "cancelled"
    with pytest.raises(spillover.TaskCancelled) as caught:
        task.result(timeout=10)
    assert caught.value.task_id == task.id and caught.value.code == "cancelled"
    assert task.cancel().state == "cancelled"  # a finished task is left as it is


def test_map_of_1000_at_concurrency_32_in_input_order_with_bounded_in_flight(
    client: spillover.Client,
) -> None:
    read = 0

    def payloads() -> Iterator[bytes]:
        nonlocal read
        for i in range(1000):
            read += 1
            yield str(i).encode()

    results = []
    for r in client.map("worker", "echo", payloads(), concurrency=32):
        results.append(r)
        assert read - len(results) <= 32  # never more than 32 submitted and not yet handed back
    assert results == [str(i).encode() for i in range(1000)]


def test_map_raises_a_failure_in_its_place_or_returns_it(client: spillover.Client) -> None:
    payloads = [{"seconds": 0}, {"no_seconds": 1}, {"seconds": 0.1}]
    results = list(client.map("worker", "sleep", payloads, return_exceptions=True))
    assert results[0]["slept"] == 0 and results[2]["slept"] == 0.1
    assert isinstance(results[1], spillover.TaskFailed) and results[1].code == "handler_error"
    got = []
    with pytest.raises(spillover.TaskFailed, match="KeyError"):
        for r in client.map("worker", "sleep", payloads):
            got.append(r)
    assert len(got) == 1


def test_typed_errors_from_a_real_edge(client: spillover.Client) -> None:
    with pytest.raises(spillover.NotFound):
        client.task(UNKNOWN).status()
    with pytest.raises(spillover.NotFound, match="nope"):
        client.run("nope", "predict", {})
    with pytest.raises(spillover.BadRequest, match="unknown region 'mars'"):
        client.run("worker", "echo", b"x", region="mars")
    with pytest.raises(spillover.BadRequest, match="X-Spillover-Priority"):
        client.submit("worker", "echo", b"x", priority=12)
    with pytest.raises(spillover.PayloadTooLarge) as too_large:
        client.run("small", "echo", os.urandom(2000))
    assert too_large.value.status == 413
    with pytest.raises(spillover.TaskFailed, match="bad input: oops") as failed:
        client.run("worker", "boom", b"oops")
    assert (failed.value.code, failed.value.status) == ("handler_error", 500)
    with pytest.raises(spillover.TaskFailed) as ran_over:  # the app's max_runtime is 0.5 s
        client.run("short", "sleep", {"seconds": 5})
    assert ran_over.value.code == "timeout" and "max_runtime" in ran_over.value.message


def test_a_timeout_names_the_task_which_goes_on(client: spillover.Client) -> None:
    t0 = time.monotonic()
    with pytest.raises(spillover.Timeout) as caught:
        client.run("worker", "sleep", {"seconds": 2}, timeout=0.5)
    assert time.monotonic() - t0 < 1.9  # answered at the deadline, not at the task's end
    assert client.task(caught.value.task_id or "").result(timeout=30)["slept"] == 2


def test_a_result_streams_into_a_file(client: spillover.Client, tmp_path: Path) -> None:
    data = os.urandom(3 << 20)  # over the inline limit: the body and the result go via blobs
    (tmp_path / "in").write_bytes(data)
    with (tmp_path / "in").open("rb") as f:
        assert client.run("worker", "pipe", f, to=tmp_path / "out") == tmp_path / "out"
    assert (tmp_path / "out").read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]  # no .part left


@pytest.fixture
async def aclient(federation: Federation) -> AsyncIterator[spillover.AsyncClient]:
    async with spillover.AsyncClient(federation.url, retry_for=10) as c:
        yield c


async def test_the_async_client_runs_submits_follows_cancels_and_maps(
    aclient: spillover.AsyncClient, tmp_path: Path
) -> None:
    assert (await aclient.run("worker", "sleep", {"seconds": 0.1}))["slept"] == 0.1
    task = await aclient.submit("worker", "steps", {"n": 2, "seconds": 0.4})
    kinds = [type(e) async for e in task.events()]
    assert kinds.count(ProgressEvent) == 2 and kinds.count(LogEvent) == 2
    assert (await task.result(timeout=10)) == {"steps": 2}
    long = await aclient.submit("worker", "sleep", {"seconds": 30})
    assert (await long.cancel()).state == "cancelled"
    with pytest.raises(spillover.TaskCancelled):
        await aclient.task(long.id).result()

    async def payloads() -> AsyncIterator[bytes]:
        for i in range(200):
            yield str(i).encode()

    got = [r async for r in aclient.map("worker", "echo", payloads(), concurrency=16)]
    assert got == [str(i).encode() for i in range(200)]
    data = os.urandom(1 << 20)
    (tmp_path / "in").write_bytes(data)
    await aclient.run("worker", "pipe", tmp_path / "in", to=tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    with pytest.raises(spillover.TaskFailed):
        await aclient.run("worker", "boom", b"async")

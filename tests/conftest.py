"""Fixtures that start real etcd: one member (shared by a session, each test in its own key
root) and three members (per module). Fault tests that kill members get their own cluster."""

from __future__ import annotations

import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from federation.queue import Queue
from federation.topology import Clusters, EtcdConfig
from spillover.local.etcd import LocalEtcd


@contextlib.contextmanager
def own_dir(factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A directory for a fixture that outlives a test, removed when the fixture ends: pytest
    would keep it to the session's end, and etcd's WAL alone is 64 MB a member."""
    path = factory.mktemp(name)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def etcd1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEtcd]:
    with own_dir(tmp_path_factory, "etcd1") as d, LocalEtcd(d) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def etcd3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEtcd]:
    with own_dir(tmp_path_factory, "etcd3") as d, LocalEtcd(d, members=3) as cluster:
        yield cluster


@pytest.fixture
def fresh_etcd(tmp_path: Path) -> Iterator[LocalEtcd]:
    """A one-member cluster of this test's own, for tests that stop or kill it."""
    with LocalEtcd(tmp_path / "etcd") as cluster:
        yield cluster


@pytest.fixture
def root() -> str:
    """A key root of this test's own, so tests sharing a cluster never see each other's keys."""
    return f"/t{uuid.uuid4().hex[:12]}"


def make_config(cluster: LocalEtcd, root: str) -> EtcdConfig:
    return EtcdConfig(endpoints=tuple(cluster.endpoints), root=root, timeout=2.0)


@pytest.fixture(params=["1-member", "3-member"])
def cluster(request: pytest.FixtureRequest) -> LocalEtcd:
    """Queue tests run against one member and against a three-member cluster."""
    name = "etcd1" if request.param == "1-member" else "etcd3"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture
async def clusters(cluster: LocalEtcd, root: str) -> AsyncIterator[Clusters]:
    c = Clusters(make_config(cluster, root))
    yield c
    await c.close()


@pytest.fixture
def queue(clusters: Clusters) -> Queue:
    return Queue(clusters)

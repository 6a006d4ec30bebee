"""etcd over TLS with client certificates, as the Terraform deployment runs it: the queue and
its watches work through :class:`federation.etcd_tls.TlsClient`; without a client certificate
the cluster refuses, and an https endpoint without ``[etcd.tls]`` is a config error."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from federation.aio import cancel_and_wait
from federation.errors import Unavailable
from federation.etcd_certs import bootstrap
from federation.etcd_tls import EtcdTls
from federation.queue import Queue
from federation.topology import Clusters, EtcdConfig
from federation.waiters import TaskWaiters
from spillover.local.etcd import LocalEtcd, ServerTls
from tests.conftest import own_dir
from tests.factories import task

pytestmark = pytest.mark.slow
MINT = Path(__file__).parents[3] / "terraform/modules/region/templates/mint-cert.sh"


Certs = tuple[Path, Path, tuple[Path, Path], tuple[Path, Path]]


def trustme_certs(d: Path) -> Certs:
    """(CA the member trusts clients by, CA clients trust the member by, member, client)."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    for name, host in (("member", "127.0.0.1"), ("client", "spillover-agent")):
        ca.issue_cert(host).private_key_and_cert_chain_pem.write_to_path(str(d / f"{name}.pem"))
    return d / "ca.pem", d / "ca.pem", (d / "member.pem",) * 2, (d / "client.pem",) * 2  # type: ignore[return-value]


def minted_certs(d: Path) -> Certs:
    """What the Terraform deployment does: ``spillover etcd-certs`` issues the two CAs and the
    client certificates once; a member mints its own from the peer CA at first boot (its
    script)."""
    bootstrap(d)
    env = {**os.environ, "SPILLOVER_CERT_DIR": str(d)}
    subprocess.run(["sh", str(MINT), "member", "IP:127.0.0.1"], check=True, env=env,
                   capture_output=True)  # fmt: skip
    return (d / "client-ca.pem", d / "peer-ca.pem", (d / "member.pem", d / "member.key"),
            (d / "agent.pem", d / "agent.key"))  # fmt: skip


@pytest.fixture(scope="module", params=["trustme", "mint-cert.sh"])
def secured(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LocalEtcd, EtcdTls]]:
    with own_dir(tmp_path_factory, "etcd-tls") as d:
        clients_ca, members_ca, (member_cert, member_key), (cert, key) = (
            trustme_certs(d) if request.param == "trustme" else minted_certs(d)
        )
        client = EtcdTls(ca_file=members_ca, cert_file=cert, key_file=key)
        tls = ServerTls(clients_ca, member_cert, member_key, client)
        with LocalEtcd(d / "data", tls=tls) as cluster:
            yield cluster, client


async def test_the_queue_and_its_watches_work_over_tls_with_a_client_certificate(
    secured: tuple[LocalEtcd, EtcdTls], root: str
) -> None:
    cluster, client = secured
    assert cluster.endpoints[0].startswith("https://")
    clusters = Clusters(EtcdConfig(endpoints=tuple(cluster.endpoints), root=root, tls=client))
    queue = Queue(clusters)
    record = task("us-east-1")
    waiters = TaskWaiters(queue, ["us-east-1"])
    following = asyncio.create_task(waiters.run())  # a watch, over TLS
    try:
        await queue.enqueue(record, b"body")
        assert (await queue.get(record.id)).id == record.id
        await queue.cancel(record.id)
        assert (await waiters.wait(record.id, 10)).state.value == "cancelled"
    finally:
        await cancel_and_wait([following])
        await clusters.close()


async def test_without_a_client_certificate_the_cluster_refuses(
    secured: tuple[LocalEtcd, EtcdTls], root: str
) -> None:
    cluster, client = secured
    anonymous = EtcdTls(ca_file=client.ca_file)
    clusters = Clusters(
        EtcdConfig(endpoints=tuple(cluster.endpoints), root=root, tls=anonymous, timeout=1)
    )
    with pytest.raises(Unavailable):
        await Queue(clusters).enqueue(task("us-east-1"), b"body")
    await clusters.close()


def test_https_endpoints_without_tls_settings_are_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"\[etcd.tls\]"):
        EtcdConfig(endpoints=("https://10.0.1.10:2379",))

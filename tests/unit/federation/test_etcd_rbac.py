"""The node roles as data (``federation/etcd_rbac.py``); what etcd makes of them is
``tests/integration/federation/test_etcd_rbac.py``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation import keys
from federation.etcd_rbac import AGENT, EDGE, Permission, known_holes, main, roles

ROOT = "/spillover"


def reaches(p: Permission, start: bytes, end: bytes) -> bool:
    """Whether ``p`` covers any key of ``[start, end)``."""
    if not p.range_end:
        return start <= p.key < end
    return p.key < end and start < p.range_end


def writes(role: str, start: bytes, end: bytes) -> bool:
    return any(p.perm != "read" and reaches(p, start, end) for p in roles(ROOT)[role])


def reads(role: str, start: bytes, end: bytes) -> bool:
    return any(p.perm != "write" and reaches(p, start, end) for p in roles(ROOT)[role])


def one(key: bytes) -> tuple[bytes, bytes]:
    return key, key + b"\x00"


def under(prefix: bytes) -> tuple[bytes, bytes]:
    return prefix, keys.prefix_end(prefix)


ADMIN_ONLY = {
    "apps": under(keys.apps(ROOT)),  # which code GPU nodes run
    "api keys": under(keys.apikeys(ROOT)),  # minting an admin key
    "webhook secrets": under(keys.webhook_secrets_all(ROOT)),
    "blob secret": one(keys.blob_secret(ROOT)),
    "storage keeper": one(keys.storage_leader(ROOT)),
}


@pytest.mark.parametrize("role", [EDGE, AGENT])
@pytest.mark.parametrize("what", ADMIN_ONLY)
def test_no_edge_or_agent_writes_what_only_the_admin_may(role: str, what: str) -> None:
    assert not writes(role, *ADMIN_ONLY[what])


def test_each_kind_reads_only_the_secret_it_uses() -> None:
    assert not reads(EDGE, *under(keys.webhook_secrets_all(ROOT)))  # agents sign webhooks
    assert reads(AGENT, *one(keys.webhook_secrets(ROOT, "any-app")))  # whichever app's
    assert reads(EDGE, *one(keys.blob_secret(ROOT)))
    assert not reads(AGENT, *under(keys.apikeys(ROOT)))  # agents never see API keys
    assert not writes(AGENT, *one(keys.quota_probe(ROOT)))  # enqueueing is the edges'
    assert not writes(EDGE, *under(keys.regions(ROOT))) and not writes(
        AGENT, *under(keys.edges(ROOT))
    )


@given(st.from_regex(r"/[a-z]{1,8}", fullmatch=True), st.text("ab/-_0", max_size=4))
def test_roles_never_reach_outside_their_root(root: str, suffix: str) -> None:
    """Not another federation sharing the cluster, even one whose root starts the same."""
    other = (root + suffix).rstrip("/")
    if other == root:
        return
    for perms in roles(root).values():
        for p in perms:
            assert p.key.startswith(f"{root}/".encode())
            assert not reaches(p, *under(f"{other}/".encode())) or other.startswith(f"{root}/")


def test_the_known_holes_follow_the_fixed_releases() -> None:
    assert len(known_holes("3.4.23")) == 4  # the etcd of Debian 12 (and of this machine)
    assert len(known_holes("3.4.42")) == 2 and len(known_holes("3.4.44")) == 1
    assert len(known_holes("3.5.30")) == 1 and len(known_holes("3.6.9")) == 1
    assert known_holes("3.6.11") == [] == known_holes("3.7.0")
    assert len(known_holes("3.3.27")) == 4


def test_show_prints_every_permission(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--show", "--root", ROOT])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == sum(len(p) for p in roles(ROOT).values())
    assert "edge\tread\t/spillover/apps/ .. /spillover/apps0" in lines

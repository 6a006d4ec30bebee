"""The pure parts of replica isolation: user names, what a replica inherits, which directories
must be exposed to it (``tests/integration/regional/test_isolation.py`` runs it for real)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.appspec import NAME_PATTERN
from regional.sandbox import closed
from regional.users import Users, replica_env, user_name


@given(st.from_regex(NAME_PATTERN.strip("^$"), fullmatch=True), st.text("abc-", min_size=1))
def test_every_app_gets_a_valid_user_name_of_its_own(app: str, suffix: str) -> None:
    name = user_name(app)
    assert len(name) <= 32 and name.startswith("spillover-")
    other = (app + suffix)[:63]
    if other != app:
        assert user_name(other) != name


def test_a_short_name_is_the_apps_a_long_one_is_cut_and_hashed() -> None:
    assert user_name("demo") == "spillover-demo"
    long = user_name("a" * 63)
    assert long.startswith("spillover-aaaaaaaaaaaaa-") and len(long) == 32


def test_a_replica_inherits_no_etcd_settings_nor_aws_credentials() -> None:
    agent = {"PATH": "/bin", "SPILLOVER_ETCD_ENDPOINTS": "https://etcd:2379",
             "SPILLOVER_ETCD_KEY": "/etc/spillover/etcd/agent.key", "AWS_ACCESS_KEY_ID": "AK",
             "AWS_SECRET_ACCESS_KEY": "s", "AWS_SESSION_TOKEN": "t", "AWS_REGION": "eu-west-1",
             "CUDA_VISIBLE_DEVICES": "0"}  # fmt: skip
    assert replica_env(agent, region="us-east-1", replica="r1") == {
        "PATH": "/bin", "AWS_REGION": "eu-west-1", "CUDA_VISIBLE_DEVICES": "0",
        "SPILLOVER_REGION": "us-east-1", "SPILLOVER_REPLICA": "r1",
    }  # fmt: skip


def _stat(mode: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    return os.stat_result((stat.S_IFDIR | mode, 0, 0, 0, uid, gid, 0, 0, 0, 0))


def test_only_directories_the_user_cannot_pass_are_exposed_with_what_leads_on() -> None:
    modes = {"/": _stat(0o755), "/root": _stat(0o700), "/root/.pyenv": _stat(0o755),
             "/root/.pyenv/v": _stat(0o755), "/srv": _stat(0o755), "/srv/apps": _stat(0o755),
             "/home": _stat(0o755), "/home/me": _stat(0o750, uid=1000, gid=50),
             "/home/me/code": _stat(0o700, uid=42)}  # fmt: skip
    paths = [Path("/root/.pyenv/v/lib"), Path("/root/.pyenv/v/bin"), Path("/srv/apps/x"),
             Path("/home/me/code/app")]  # fmt: skip
    plan = closed(paths, lambda p: modes[str(p)], uid=42, gids={7})
    # /home/me: others may not pass (0750, group 50); /home/me/code is the user's own.
    assert plan == {Path("/root"): {".pyenv"}, Path("/home/me"): {"code"}}
    assert closed(paths, lambda p: modes[str(p)], uid=42, gids={50}) == {Path("/root"): {".pyenv"}}


async def test_an_agent_that_is_not_root_runs_replicas_as_itself_or_refuses() -> None:
    users = Users("someone-else")
    users.root = False  # as an agent run by a user
    try:
        with pytest.raises(PermissionError, match="cannot become another"):
            await users.of("demo")
        users.configured = None
        user, directory = await users.of("demo")
        assert user is None and stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert (await users.of("demo"))[1] == directory  # one per app
    finally:
        users.close()
    assert not users.base.exists()

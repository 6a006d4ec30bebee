"""Who runs an app's replicas, where they listen, and what they inherit: the agent's side of
replica isolation (the replica's side is ``sandbox.py``).

An agent running as root runs each app's replicas as that app's own unprivileged user
(``spillover-<app>``, created on first use, or ``replica_user`` from ``region.toml``), primary
group ``spillover-replicas`` (which the GPU node's firewall keeps from the instance metadata
service). A replica listens on a Unix socket in its app's directory, which only that user and
root (the agent) may enter: another app's replica cannot reach it. A replica inherits no etcd
settings and no AWS credentials from the agent's environment.

Not as root (development, tests as a user), replicas run as the agent's own user, still on Unix
sockets in 0700 directories.
"""

from __future__ import annotations

import asyncio
import grp
import hashlib
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

GROUP = "spillover-replicas"
_MAX_NAME = 32  # useradd's limit on Linux
_SUN_PATH = 107  # the longest path a Unix socket may have (sockaddr_un)
# Never handed to user code: the agent's etcd endpoints and certificate paths, and AWS
# credentials (a node's instance role is kept from replicas by the firewall).
_WITHHELD = ("SPILLOVER_", "AWS_")
_PASSED = frozenset({"AWS_REGION", "AWS_DEFAULT_REGION"})


def user_name(app: str) -> str:
    """``spillover-<app>``; an app name too long for a user name is cut and given a hash of
    the whole, so two long names never share a user."""
    name = f"spillover-{app}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(app.encode()).hexdigest()[:8]
    return f"spillover-{app[: _MAX_NAME - len('spillover--') - 8]}-{digest}"


def replica_env(environ: Mapping[str, str], **spillover: str) -> dict[str, str]:
    """The agent's environment without what it withholds, plus ``SPILLOVER_<KEY>`` values."""
    env = {k: v for k, v in environ.items() if k in _PASSED or not k.startswith(_WITHHELD)}
    env.update({f"SPILLOVER_{k.upper()}": v for k, v in spillover.items()})
    return env


@dataclass(frozen=True)
class ReplicaUser:
    name: str
    uid: int
    gid: int


class Users:
    """Each app's replica user, found or created once per agent, and the directories its
    replicas listen in."""

    def __init__(self, configured: str | None = None) -> None:
        self.configured = configured
        self.root = os.geteuid() == 0
        self._known: dict[str, ReplicaUser] = {}
        self._dirs: dict[str, Path] = {}
        self._lock = asyncio.Lock()
        # One directory per agent: the apps' directories inside, each only its user's. Others
        # may pass through it (0711) but not list it.
        self.base = Path(tempfile.mkdtemp(prefix="spillover-replicas-"))
        self.base.chmod(0o711 if self.root else 0o700)
        self.close = weakref.finalize(self, shutil.rmtree, self.base, ignore_errors=True)

    async def of(self, app: str) -> tuple[ReplicaUser | None, Path]:
        """The user the app's replicas run as (None: the agent's own, which is not root), and
        their directory."""
        async with self._lock:
            user = await self._user(app)
            if app not in self._dirs:
                self._dirs[app] = _directory(self.base, user)
            return user, self._dirs[app]

    async def _user(self, app: str) -> ReplicaUser | None:
        if not self.root:
            me = pwd.getpwuid(os.geteuid()).pw_name
            if self.configured not in (None, me):
                raise PermissionError(f"replica_user = {self.configured!r}: the agent runs "
                                      f"as {me}, not root, and cannot become another")  # fmt: skip
            return None
        name = self.configured or user_name(app)
        if name not in self._known:
            self._known[name] = await asyncio.to_thread(_ensure, name, self.configured is None)
        return self._known[name]


def socket_path(directory: Path, n: int) -> Path:
    path = directory / f"r{n}.sock"
    if len(str(path)) > _SUN_PATH:
        raise ValueError(f"{path}: longer than a Unix socket's path may be (set TMPDIR shorter)")
    return path


def _directory(base: Path, user: ReplicaUser | None) -> Path:
    """A directory of the app's own in ``base``: 0700, its user's."""
    path = Path(tempfile.mkdtemp(dir=base, prefix=""))
    if user is not None:
        os.chown(path, user.uid, user.gid)
    return path


def _ensure(name: str, create: bool) -> ReplicaUser:
    try:
        found = pwd.getpwnam(name)
    except KeyError:
        if not create:
            raise LookupError(f"replica_user = {name!r}: no such user") from None
        _add(name)
        found = pwd.getpwnam(name)
    if found.pw_uid == 0:
        raise PermissionError(f"replica user {name!r} is root: replicas never run as root")
    return ReplicaUser(name, found.pw_uid, found.pw_gid)


def _add(name: str) -> None:
    """A system user in GROUP, without a home or a login shell."""
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        _shadow(["groupadd", "--system", GROUP])
    _shadow(["useradd", "--system", "--gid", GROUP, "--no-create-home", "--home-dir",
             "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "Spillover replicas",
             name])  # fmt: skip
    log.info("created user %s for replicas", name)


def _shadow(command: list[str]) -> None:
    """Run groupadd or useradd. Another agent of the machine may add the same at the same
    moment: "exists" (9) is success, a locked passwd file (10) is tried again."""
    for _ in range(50):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode in (0, 9):
            return
        if done.returncode != 10:
            break
        time.sleep(0.1)
    raise RuntimeError(f"{command[0]} {command[-1]}: {done.stderr.strip()}")

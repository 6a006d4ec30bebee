"""The replica's side of isolation (the agent's is ``users.py``): a replica started by a root
agent becomes its app's user before any user code is imported.

It starts as root only to run Spillover's own code (``python -P``: the app's directory is not on
``sys.path`` yet, so nothing of the app's can shadow a module it imports). Then, in this order:
the directories Python and the app need are made reachable for the user (``expose``), the
process gives up root for good (real, effective and saved ids, no supplementary groups), and
only then does it enter the app's directory and import the handler.

``expose``: the user must reach the interpreter, its libraries and the app, and on a machine
where one of those lies under a directory closed to others (a Python built under ``/root``,
0700) it could not start. The replica then gets a mount namespace of its own, in which each such
directory is an empty, read-only tmpfs showing only the subdirectories it needs (bound from the
real ones, their own permissions unchanged). Nothing changes outside the replica: ``/root`` stays
0700 for everyone else, and inside, the rest of it is not even there.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import stat
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND = 1, 2, 4, 32, 4096
_MS_REC, _MS_PRIVATE = 0x4000, 1 << 18


def become(user: str | None, app_root: Path) -> None:
    """Become ``user`` (None: stay who we are) and enter ``app_root``, whose handlers are then
    importable. Raises SystemExit with the reason when the user cannot reach what it needs."""
    if user is not None:
        pw = pwd.getpwnam(user)
        needed = [*(Path(p) for p in sys.path if p and os.path.isdir(p)), app_root,
                  Path(os.path.realpath(sys.executable)).parent]  # fmt: skip
        plan = closed(needed, lambda p: os.stat(p), pw.pw_uid, {pw.pw_gid})
        if plan:
            expose(plan)
        os.setgroups([])
        os.setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid)
        os.setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid)
        os.umask(0o077)  # what the handler writes is its own
    if not os.access(app_root, os.R_OK | os.X_OK):
        who = user or "this user"
        raise SystemExit(f"app_root {app_root} is not readable by {who}: make it (and the "
                         "handler's files) readable by others, e.g. chmod -R o+rX")  # fmt: skip
    os.chdir(app_root)
    sys.path.insert(0, str(app_root))  # handlers are imported from the app's directory


def _passable(st: os.stat_result, uid: int, gids: set[int]) -> bool:
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in gids:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def closed(
    paths: Iterable[Path], stat_of: Callable[[Path], os.stat_result], uid: int, gids: set[int]
) -> dict[Path, set[str]]:
    """The directories on the way to ``paths`` that ``uid`` may not pass through, each with the
    names in it that lead on (pure, over ``stat_of``)."""
    plan: dict[Path, set[str]] = {}
    for path in paths:
        real = Path(os.path.realpath(path))
        for parent in reversed(real.parents):
            child = real.relative_to(parent).parts[0]
            if not _passable(stat_of(parent), uid, gids):
                plan.setdefault(parent, set()).add(child)
    return plan


def expose(plan: dict[Path, set[str]]) -> None:
    """In a mount namespace of this process's own: each closed directory of ``plan`` becomes a
    read-only tmpfs holding only its listed subdirectories, bound from the real ones. Outer
    directories first: an inner one is reached through the outer one's binding."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
    _check(libc.unshare(_CLONE_NEWNS), "unshare a mount namespace")
    _check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "make mounts private")
    for directory in sorted(plan, key=lambda p: len(p.parts)):
        where = bytes(directory)
        # Held open across the tmpfs that hides them, then bound back in by descriptor.
        held = {n: os.open(directory / n, os.O_PATH | os.O_DIRECTORY) for n in plan[directory]}
        flags = _MS_NOSUID | _MS_NODEV
        _check(libc.mount(b"tmpfs", where, b"tmpfs", flags, b"mode=0755"), f"tmpfs on {where!r}")
        for name, fd in held.items():
            os.mkdir(directory / name, 0o755)
            source = f"/proc/self/fd/{fd}".encode()
            _check(libc.mount(source, bytes(directory / name), None, _MS_BIND | _MS_REC, None),
                   f"bind {directory / name}")  # fmt: skip
            os.close(fd)
        readonly = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | flags
        _check(libc.mount(None, where, None, readonly, None), f"read-only {where!r}")


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise SystemExit(f"replica sandbox: cannot {what}: {os.strerror(errno)}")

"""Child processes that never outlive their parent."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None, sig: signal.Signals = signal.SIGTERM) -> None:
    """Send this process ``sig`` when ``parent`` (default: the current parent) dies, even by
    SIGKILL (Linux's PR_SET_PDEATHSIG), so a killed supervisor leaves no process behind.

    Call it first thing in the child, or as a ``preexec_fn`` only from a parent that has no
    threads yet: running Python between fork and exec beside gRPC's threads is not safe."""
    expected = os.getppid() if parent is None else parent
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != expected:  # the parent died before prctl took effect
        os._exit(0)

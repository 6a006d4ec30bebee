"""Sizes the task records keep, in one light module: the replica process imports it too, and it
must not load pydantic (or anything of the agent) to cap what a handler sends."""

from __future__ import annotations

# A task's progress and log values are rewritten whole in etcd as they come: at most 100 lines
# of 500 characters and a 500-character progress message, ~60 KiB.
KEEP_LINES = 100
MAX_LINE = 500
MAX_MESSAGE = 500

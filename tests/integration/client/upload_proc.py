"""A client process that sends a file through ``spillover.Client`` and reports how much its
own memory grew (peak RSS over idle, from /proc/self: the kernel's high-water mark is reset just
before each transfer), so a test can hold the client to a bound.

    python -m tests.integration.client.upload_proc URL UP ROUND_TRIP DST

UP goes to the worker's ``digest`` (its size and sha256 come back); ROUND_TRIP goes through
``pipe`` and comes back into DST.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import spillover


def kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


def peak_growth_mib(idle: int) -> float:
    return (kib("VmHWM") - idle) / 1024


def main() -> None:
    url, src, there_and_back, dst = (
        sys.argv[1],
        Path(sys.argv[2]),
        Path(sys.argv[3]),
        Path(sys.argv[4]),
    )
    with spillover.Client(url, retry_for=30) as client:
        client.run("worker", "pipe", b"warm up: connections, buffers, lazy imports", to=dst)
        idle = kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
        digest = client.run("worker", "digest", src)  # up: the file streamed, never whole
        up = peak_growth_mib(idle)
        Path("/proc/self/clear_refs").write_text("5")
        client.run("worker", "pipe", there_and_back, to=dst)  # and down into a file
        round_trip = peak_growth_mib(idle)
    print(json.dumps({"idle_mib": idle / 1024, "up_mib": up, "round_trip_mib": round_trip,
                      "digest": digest}))  # fmt: skip


if __name__ == "__main__":
    main()

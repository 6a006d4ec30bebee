"""A paper model of a federation at 50,000 tasks/s across three regions: how many etcd clusters
(hashed partitions per region), what size, and what binds next. Pure arithmetic on named inputs,
the measured ones from this repository's benchmarks and the assumed ones said so; docs/scaling.md
shows the output and where each input comes from.

    python -m benchmarks.scaling_model
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from federation.queue import MAX_BATCH
from federation.topology import EtcdConfig

# Measured on the 2-core development machine, `python -m benchmarks.queue`: tasks/s through
# enqueue, claim, fenced complete and waiter, 64 clients in one process beside etcd.
LIFECYCLE_1_MEMBER = 1_343
LIFECYCLE_3_MEMBERS = 895  # three members on loopback, on the same 2 cores as everything else
# Per task, from issue 17's profile of `spillover bench` (no-op tasks): mutations, CPU ms.
MUTATIONS_PER_TASK = 12
CPU_MS = {"etcd": 1.4, "agent": 1.4, "replica": 0.65, "client": 0.9}
EDGE_PER_PROCESS = 1_000  # accepted submits/s of one edge process (benchmarks.edge: 1,018-1,090)
# Published: etcd's "Performance" page, 3 members of 8 vCPUs, 1,000 clients: puts/s to the leader.
ETCD_PUBLISHED_PUTS = 44_341

# Assumed.
MEMBER, MEMBER_CORES = "m7g.2xlarge", 8  # 32 GiB; etcd: heavy deployments want 8-16 cores
MEMBERS = 3  # per cluster: one per availability zone; a write is applied by each
# A dedicated 8-vCPU member has 4x the cores the whole measured run shared (three members,
# clients, claimer, waiters): cores credited, not clock speed, nothing for the Python side
# moving away, and no more than 8 (etcd's raft loop, apply loop and bbolt writer are serial).
SCALE_OUT = MEMBER_CORES / 2
HEADROOM = 0.6  # plan every cluster and process to run at 60 % of what it can do
TARGET = 50_000
SHARES = {"us-east-1": 0.5, "eu-west-1": 0.3, "ap-south-1": 0.2}
QUOTA = 8 << 30  # Terraform's etcd_quota_gb default; etcd's suggested maximum
RETAINED_BYTES = 2_500  # a finished task kept: its ~530 B record twice, a 1 KiB result, keys
# One watch event in a Python consumer, ms: not decoded .. decoded. The upper end is derived:
# the edge's done-watch is ~10 % of its CPU at ~1 ms of CPU per task (issue 17's profile).
WATCH_EVENT_MS = (0.025, 0.1)
RTT_MS = {"us-east-1 ↔ eu-west-1": 80, "us-east-1 ↔ ap-south-1": 200}


def needed(rate: float, capacity: float, headroom: float = HEADROOM) -> int:
    """The fewest clusters (or processes) that carry ``rate`` with none above ``headroom`` of its
    ``capacity``: a ceiling (rounded first, so an exact fit is not pushed up by float error)."""
    return max(1, math.ceil(round(rate / (capacity * headroom), 9)))


def per_cluster(measured: float = LIFECYCLE_3_MEMBERS, scale: float = SCALE_OUT) -> float:
    return measured * scale


def retention_held(rate: float, quota: int = QUOTA, per_task: int = RETAINED_BYTES) -> float:
    """Seconds of finished tasks a cluster keeps at ``rate`` under the low watermark (above the
    high one, edges refuse new tasks and agents sweep what finished 5 minutes ago)."""
    return quota * EtcdConfig().low_watermark / (per_task * rate)


@dataclass(frozen=True)
class Region:
    name: str
    rate: float
    clusters: int

    @property
    def load(self) -> float:
        """Tasks/s on each of the region's clusters: hashed partitions spread them evenly."""
        return self.rate / self.clusters


def plan(target: float = TARGET, capacity: float | None = None) -> list[Region]:
    capacity = capacity or per_cluster()
    return [Region(n, target * s, needed(target * s, capacity)) for n, s in SHARES.items()]


def limits(regions: list[Region], target: float = TARGET) -> list[tuple[str, str]]:
    """What else the load costs, each against what one process or member can do."""
    # Measured on one member; every member of a cluster appends, fsyncs and applies each write.
    cores = {part: target * ms / 1000 * (MEMBERS if part == "etcd" else 1)
             for part, ms in CPU_MS.items()}  # fmt: skip
    edges = needed(target, EDGE_PER_PROCESS)
    agents = needed(target, 1000 / CPU_MS["agent"])
    lo, hi = (target * ms / 1000 for ms in WATCH_EVENT_MS)
    busiest = max(r.load for r in regions)
    parts = " + ".join(f"{c:g}" for c in cores.values())
    leader = busiest * CPU_MS["etcd"] / 1000
    ready = f"{2 * target:,.0f}/s: {2 * lo:.1f}-{2 * hi:.0f} cores"
    rows = [
        (
            "CPU: " + ", ".join(cores) + f" (etcd × {MEMBERS} members)",
            f"{parts} = {sum(cores.values()):g} cores",
        ),
        ("edge processes (one core each)", f"{edges}"),
        ("agent processes, by their CPU alone", f"{agents}"),
        ("etcd leader, busiest cluster, at least", f"{leader:.1f} of {MEMBER_CORES} cores"),
        ("done events each edge parses today", f"{target:,.0f}/s: {lo:.2f}-{hi:.1f} cores"),
        ("ready events each agent parses today", ready),
        ("heartbeat events, control cluster", f"{agents * (agents + edges) + edges**2:,}/s"),
    ]
    rows += [(f"spillover claims per agent and app, {k}", f"{MAX_BATCH * 1000 / ms:,.0f}/s")
             for k, ms in RTT_MS.items()]  # fmt: skip
    return [*rows, ("finished tasks a cluster keeps", f"{retention_held(busiest) / 60:.0f} min")]


def render(target: float = TARGET) -> str:
    cap, regions = per_cluster(), plan(target)
    total = sum(r.clusters for r in regions)
    cluster = [
        ("measured: 1 member, 2 cores shared with everything", LIFECYCLE_1_MEMBER),
        ("measured: 3 members on loopback, the same 2 cores", LIFECYCLE_3_MEMBERS),
        (f"3 × {MEMBER}: × {SCALE_OUT:g} (assumed)", cap),
        (f"planned at {HEADROOM:.0%}", cap * HEADROOM),
        (f"cross-check: etcd's {ETCD_PUBLISHED_PUTS:,} puts/s ÷ {MUTATIONS_PER_TASK} mutations",
         ETCD_PUBLISHED_PUTS / MUTATIONS_PER_TASK),
    ]  # fmt: skip
    out = ["| one etcd cluster | tasks/s |", "|---|---:|"]
    out += [f"| {what} | {n:,.0f} |" for what, n in cluster]
    out += ["", "| region | tasks/s | clusters | members | tasks/s per cluster |"]
    out.append("|---|" + "---:|" * 4)
    out += [f"| {r.name} | {r.rate:,.0f} | {r.clusters} | {MEMBERS * r.clusters} | {r.load:,.0f} |"
            for r in regions]  # fmt: skip
    out += [f"| **all** | **{target:,.0f}** | **{total}** | **{MEMBERS * total}** | |", ""]
    out += ["| at this load | |", "|---|---:|"]
    return "\n".join(out + [f"| {what} | {value} |" for what, value in limits(regions, target)])


if __name__ == "__main__":
    print(render())

"""The etcd adapter over aetcd: failover across members, sessions, txns, paged ranges, and
watches that resume from a revision and recover from compaction by re-listing.

aetcd talks to one endpoint per client, does not re-watch after a stream error and has no range
limit, so this module adds those. Nothing above it sees aetcd types.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar
from urllib.parse import urlsplit

import aetcd
from aetcd import rpc

from federation.errors import PermissionDenied, Rejected, StorageFull, Unavailable, Unreachable
from federation.etcd_tls import EtcdTls, TlsClient
from federation.keys import prefix_end
from federation.metrics import FederationMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

# etcd's answer to a write once its quota is used up (the NOSPACE alarm).
_NO_SPACE = "database space exceeded"
# gRPC's answer to a request past the server's receive limit (--max-request-bytes + 512 KiB).
_TOO_LARGE = "larger than max"
# Pages of a range read. A backlog of ~20k records in one response would pass gRPC's 4 MiB limit.
PAGE = 1000


@dataclass(frozen=True, slots=True)
class KV:
    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int = 0
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    kind: Literal["put", "delete"]
    kv: KV


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every key under a prefix at ``revision``. A list-watch yields one first, and again after
    falling behind compaction."""

    kvs: list[KV]
    revision: int


class Compacted(Exception):
    """The watch's start revision was compacted away; re-list and watch from the new revision."""


def _reraise_if_cancelled(error: BaseException | None = None) -> None:
    """Raise CancelledError if this task is being cancelled. Needed after every aetcd call:
    Python 3.11's ``asyncio.wait_for`` (used inside aetcd) can swallow a cancellation that races
    with its inner future, and grpc can report a cancelled call as a client error. Either way the
    task stays marked as cancelling; without this check it would retry forever and hang shutdown."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from error


def _kv(pb: Any) -> KV:
    return KV(pb.key, pb.value, pb.mod_revision, pb.create_revision, pb.lease)


# -- txn building blocks: etcd's own protobuf messages, built once --------------------------------
# aetcd's txn builders make an object per op and convert each to its message on every call: on
# the hot path (every enqueue, claim and settle) that conversion was ~5 % of an agent's CPU.
Compare: TypeAlias = Any  # rpc.Compare (the generated code is untyped)
Op: TypeAlias = Any  # rpc.RequestOp
_EQ, _GREATER = rpc.Compare.EQUAL, rpc.Compare.GREATER
_MOD, _VALUE, _CREATE = rpc.Compare.MOD, rpc.Compare.VALUE, rpc.Compare.CREATE


def mod_is(key: bytes, revision: int) -> Compare:
    return rpc.Compare(key=key, result=_EQ, target=_MOD, mod_revision=revision)


def value_is(key: bytes, value: bytes) -> Compare:
    return rpc.Compare(key=key, result=_EQ, target=_VALUE, value=value)


def absent(key: bytes) -> Compare:
    return rpc.Compare(key=key, result=_EQ, target=_CREATE, create_revision=0)


def present(key: bytes) -> Compare:
    return rpc.Compare(key=key, result=_GREATER, target=_CREATE, create_revision=0)


def put(key: bytes, value: bytes, lease: int | None = None) -> Op:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease or 0))


def delete(key: bytes) -> Op:
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))


def get(key: bytes) -> Op:
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key))


def nested(compare: list[Compare], success: list[Op], failure: list[Op] | None = None) -> Op:
    """One sub-txn per task inside a batch txn: each compares on its own, so one stale entry
    does not fail the batch. etcd counts nested ops against --max-txn-ops (default 128)."""
    request = rpc.TxnRequest(compare=compare, success=success, failure=failure or [])
    return rpc.RequestOp(request_txn=request)


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    responses: list[Any]

    def nested_succeeded(self) -> list[bool]:
        return [bool(r.response_txn.succeeded) for r in self.responses]

    def nested_reads(self, index: int) -> list[tuple[bool, bytes]]:
        """Per nested sub-txn: whether it succeeded, and the value its ``get`` op at ``index``
        read (empty when it failed or the key was absent)."""
        out = []
        for r in self.responses:
            sub = r.response_txn
            kvs = sub.responses[index].response_range.kvs if sub.succeeded else []
            out.append((bool(sub.succeeded), kvs[0].value if kvs else b""))
        return out

    def got(self, index: int) -> KV | None:
        """The KV read by the ``get`` op at ``index`` of the branch that ran."""
        kvs = self.responses[index].response_range.kvs
        return _kv(kvs[0]) if kvs else None


class Etcd:
    """A client for one etcd cluster. Tries members in turn: an unreachable member moves the
    client to the next one for the following call. Errors become :class:`Unavailable`."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float = 5.0,
        metrics: FederationMetrics | None = None,
        tls: EtcdTls | None = None,
        name: str | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("an etcd cluster needs at least one endpoint")
        # What the cluster is called in sessions, group commits and logs (``Clusters`` names
        # them); without a name, its endpoints.
        self.name = name or ",".join(endpoints)
        self.endpoints = [_host_port(e) for e in endpoints]
        self._urls = tuple(endpoints)
        self._tls = tls
        self._credentials = tls.credentials() if tls is not None else None
        self._timeout = timeout
        self._metrics = metrics
        self._index = 0
        self._client: aetcd.Client | None = None
        self._members: list[Etcd] = []

    def members(self) -> list[Etcd]:
        """One client per member, for what is asked of a member itself (its status) rather
        than of the cluster."""
        if not self._members:
            self._members = [self.member(url) for url in self._urls]
        return self._members

    def member(self, url: str, timeout: float | None = None) -> Etcd:
        """A client of one member (``url``, one of this cluster's endpoints); a long ``timeout``
        for what takes long (a defragmentation of a large db)."""
        return Etcd([url], timeout=timeout or self._timeout, metrics=self._metrics, tls=self._tls)

    @property
    def urls(self) -> tuple[str, ...]:
        return self._urls

    @property
    def endpoint(self) -> str:
        host, port = self.endpoints[self._index]
        return f"{host}:{port}"

    def _current(self) -> aetcd.Client:
        if self._client is None:
            host, port = self.endpoints[self._index]
            # aetcd's timeout is an int number of seconds per RPC.
            timeout = max(1, round(self._timeout))
            if self._credentials is None:
                self._client = aetcd.Client(host, port, timeout=timeout)
            else:
                self._client = TlsClient(host, port, self._credentials, timeout=timeout)
        return self._client

    async def _failover(self, failed: aetcd.Client) -> None:
        if id(self._client) != id(failed):  # by id: `is` would narrow aetcd's untyped Any
            return  # another call already moved on
        self._client = None
        self._index = (self._index + 1) % len(self.endpoints)
        await _close(failed)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _close(client)
        for member in self._members:
            await member.close()

    async def call(
        self, op: str, fn: Callable[[aetcd.Client], Awaitable[T]], *, retry: bool = False
    ) -> T:
        """Run ``fn`` against the current member. A member that could not be connected to moves
        the client to the next one, where the request is tried again (it was never sent). Any
        other UNAVAILABLE ("leader changed", a connection reset) is retried on the next member
        only if ``retry`` says the request is safe to repeat (reads, keep-alives): a write may
        have been applied before the error, and a repeated claim or commit would then fail its
        compare against itself and be taken for someone else's."""
        last: Exception | None = None
        for _ in range(len(self.endpoints)):
            client = self._current()
            started = time.perf_counter()
            try:
                result = await fn(client)
                _reraise_if_cancelled()
                return result
            except aetcd.ConnectionFailedError as e:
                _reraise_if_cancelled(e)
                last = e
                await self._failover(client)
                if not (retry or _never_sent(e)):
                    raise Unavailable(f"etcd {self.endpoint} failed {op}: {e}") from e
            except aetcd.ConnectionTimeoutError as e:
                _reraise_if_cancelled(e)
                # Timed out: the request may or may not have applied; do not retry it.
                await self._failover(client)
                raise Unavailable(f"etcd {self.endpoint} timed out on {op}: {e}") from e
            except aetcd.ClientError as e:
                _reraise_if_cancelled(e)
                raise _refusal(op, e) from e
            except asyncio.CancelledError as e:
                _reraise_if_cancelled(e)
                # Not our cancellation: another call failed over and closed the channel under
                # this one (grpc.aio cancels its calls then). It may have applied: no retry.
                raise Unavailable(f"etcd {op} cut short: the channel closed (failover)") from e
            finally:
                if self._metrics is not None:
                    elapsed = time.perf_counter() - started
                    self._metrics.etcd_request_seconds.labels(op).observe(elapsed)
        raise Unreachable(f"no etcd member reachable for {op}: {last}")

    async def _stub(self, op: str, service: str, method: str, request: Any, *, retry: bool) -> Any:
        """A raw gRPC call (``kvstub.Range``, ``maintenancestub.Status``, ...) for what aetcd
        does not expose, with its errors translated as aetcd's own calls translate them."""

        async def call(c: aetcd.Client) -> Any:
            await c.connect()
            try:
                rpc_method = getattr(getattr(c, service), method)
                return await rpc_method(request, timeout=c._timeout, metadata=c.metadata)
            except aetcd.rpc.AioRpcError as e:
                aetcd.exceptions._handle_exception(e)

        return await self.call(op, call, retry=retry)

    async def status(self) -> tuple[int, str | None]:
        """(number of members, name of the leader or None while there is none)."""

        async def call(c: aetcd.Client) -> tuple[int, str | None]:
            status = await c.status()
            members = [m async for m in c.members()]
            leader = status.leader.name if status.leader is not None else None
            return len(members), leader

        return await self.call("status", call, retry=True)

    # -- reads and writes -----------------------------------------------------------------------

    async def get(self, key: bytes) -> KV | None:
        r = await self.call("get", lambda c: c.get(key), retry=True)
        return None if r is None else _kv(r)

    async def put(self, key: bytes, value: bytes, lease: int | None = None) -> None:
        await self.call("put", lambda c: c.put(key, value, lease=lease))

    async def delete(self, key: bytes) -> None:
        await self.call("delete", lambda c: c.delete(key))

    async def range(
        self,
        key: bytes,
        range_end: bytes,
        *,
        limit: int = 0,
        keys_only: bool = False,
        revision: int = 0,
    ) -> tuple[list[KV], int, bool]:
        """One page of ``[key, range_end)``: (kvs, header revision, more). It may hold fewer
        than ``limit`` keys (:meth:`_paged`)."""
        kvs, revision, more, _ = await self._paged(
            key, range_end, limit=limit, keys_only=keys_only, revision=revision
        )
        return kvs, revision, more

    async def page(
        self, key: bytes, range_end: bytes, *, limit: int, revision: int = 0
    ) -> tuple[list[KV], int, bool, int]:
        """One page of ``[key, range_end)`` and how many keys the range holds: (kvs, header
        revision, more, count). etcd 3.4 walks the whole range to answer either (``scan.py``)."""
        return await self._paged(key, range_end, limit=limit, revision=revision)

    async def _paged(
        self,
        key: bytes,
        range_end: bytes,
        *,
        limit: int,
        keys_only: bool = False,
        revision: int = 0,
    ) -> tuple[list[KV], int, bool, int]:
        """A page too large for gRPC's 4 MiB receive limit is read again in halves (records
        are not bounded: 1,000 records of 7 KiB, a long Content-Type each, are 7 MB, and every
        listing of them failed for good); callers page on ``more``. One value (etcd's
        ``--max-request-bytes``, 1.5 MiB by default) always fits. A range request is tiny, so
        "larger than max" on one is about its reply, never the request."""
        while True:
            request = rpc.RangeRequest(
                key=key, range_end=range_end, limit=limit, keys_only=keys_only, revision=revision
            )
            try:
                r = await self._stub("range", "kvstub", "Range", request, retry=True)
            except Rejected as e:
                if _TOO_LARGE not in str(e) or limit <= 1:  # unpaged (0) or one value: no help
                    raise
                limit //= 2
                continue
            kvs = [_kv(kv) for kv in r.kvs]
            return kvs, int(r.header.revision), bool(r.more), int(r.count)

    async def count(self, prefix: bytes) -> int:
        """How many keys start with ``prefix`` (etcd counts them; none is sent)."""
        request = rpc.RangeRequest(key=prefix, range_end=prefix_end(prefix), count_only=True)
        r = await self._stub("count", "kvstub", "Range", request, retry=True)
        return int(r.count)

    async def range_all(
        self, key: bytes, range_end: bytes, *, keys_only: bool = False
    ) -> tuple[list[KV], int]:
        """Every key in the range, read in pages at one revision (a consistent snapshot)."""
        kvs, revision, more = await self.range(key, range_end, limit=PAGE, keys_only=keys_only)
        while more:
            page, _, more = await self.range(
                kvs[-1].key + b"\x00",
                range_end,
                limit=PAGE,
                keys_only=keys_only,
                revision=revision,
            )
            kvs.extend(page)
        return kvs, revision

    async def txn(
        self, compare: list[Compare], success: list[Op], failure: list[Op] | None = None
    ) -> TxnResult:
        request = rpc.TxnRequest(compare=compare, success=success, failure=failure or [])
        r = await self._stub("txn", "kvstub", "Txn", request, retry=False)
        return TxnResult(bool(r.succeeded), list(r.responses))

    # -- maintenance (``storage.py``) ---------------------------------------------------------

    async def space(self) -> tuple[int, int, bool]:
        """This member's (db file size, bytes in use, whether its NOSPACE alarm is raised)."""
        r = await self._stub("status", "maintenancestub", "Status", rpc.StatusRequest(),
                             retry=True)  # fmt: skip
        return int(r.dbSize), int(r.dbSizeInUse), any("NOSPACE" in e for e in r.errors)

    async def compact(self, revision: int) -> None:
        await self.call("compact", lambda c: c.compact(revision, physical=True), retry=True)

    async def defragment(self) -> None:
        await self.call("defragment", lambda c: c.defragment(), retry=True)

    async def disarm_nospace(self) -> int:
        """Deactivate every member's NOSPACE alarm, one by one as ``etcdctl alarm disarm``
        does (etcd matches the member id exactly). Returns how many there were."""
        get = rpc.AlarmRequest(action=rpc.AlarmRequest.GET)
        alarms = (await self._stub("alarm", "maintenancestub", "Alarm", get, retry=True)).alarms
        nospace = [a for a in alarms if a.alarm == rpc.NOSPACE]
        for a in nospace:
            off = rpc.AlarmRequest(action=rpc.AlarmRequest.DEACTIVATE, memberID=a.memberID,
                                   alarm=rpc.NOSPACE)  # fmt: skip
            await self._stub("alarm", "maintenancestub", "Alarm", off, retry=True)
        return len(nospace)

    # -- users and roles (``etcd_rbac.py``) ------------------------------------------------

    async def auth(self, method: str, request: Any) -> Any:
        """One call to etcd's Auth service (``RoleAdd``, ``UserGrantRole``, ...). Over TLS
        only: a user is its client certificate's CN."""
        if self._credentials is None:
            raise Rejected("etcd users and roles need TLS with client certificates")
        return await self._stub(method, "auth_stub", method, request, retry=False)

    async def version(self) -> str:
        """The member's etcd version (which known RBAC holes it has: ``etcd_rbac.py``)."""
        r = await self._stub("status", "maintenancestub", "Status", rpc.StatusRequest(),
                             retry=True)  # fmt: skip
        return str(r.version)

    # -- leases -----------------------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        lease = await self.call("lease_grant", lambda c: c.lease(ttl))
        return int(lease.id)

    async def keepalive(self, lease_id: int, within: float | None = None) -> int:
        """Refresh a lease; returns its remaining TTL, 0 if it is gone. ``within`` seconds at
        most, then the next refresh goes to the next member: a member busy for a while (a
        defragmentation blocks it) must not cost every session on it its lease."""
        client = self._current()
        try:
            async with asyncio.timeout(within):
                reply = await self.call(
                    "lease_keepalive", lambda c: c.refresh_lease(lease_id), retry=True
                )
        except TimeoutError:
            await self._failover(client)
            raise Unavailable(f"etcd {self.endpoint}: no keep-alive answer in {within} s") from None
        return 0 if reply is None else int(reply.TTL)

    async def revoke(self, lease_id: int) -> None:
        await self.call("lease_revoke", lambda c: c.revoke_lease(lease_id), retry=True)

    # -- watches ----------------------------------------------------------------------------

    async def watch(self, prefix: bytes, start_revision: int) -> AsyncIterator[Event]:
        """Events under ``prefix`` from ``start_revision`` on, forever. A broken stream (member
        down, network) is re-opened from the revision after the last event, on the next member.
        Raises :class:`Compacted` when that revision is gone."""
        next_rev = start_revision
        backoff = 0.05
        while True:
            client = self._current()
            try:
                watch = await client.watch_prefix(prefix, start_revision=next_rev)
                _reraise_if_cancelled()
                backoff = 0.05
                async for ev in watch:
                    kv = _kv(ev.kv)
                    next_rev = kv.mod_revision + 1
                    kind: Literal["put", "delete"] = (
                        "put" if ev.kind == aetcd.EventKind.PUT else "delete"
                    )
                    yield Event(kind, kv)
                # The iterator ends only when the stream was shut down under it.
            except aetcd.RevisionCompactedError as e:
                raise Compacted(str(e)) from e
            except aetcd.ClientError as e:
                _reraise_if_cancelled(e)
                log.info("watch on %s broke (%s); resuming from revision %d", prefix, e, next_rev)
            await self._failover(client)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def list_watch(self, prefix: bytes) -> AsyncIterator[Snapshot | Event]:
        """A snapshot of ``prefix``, then its changes; a new snapshot whenever the watch fell
        behind compaction. Waits out unavailability with capped backoff."""
        backoff = 0.05
        while True:
            try:
                kvs, revision = await self.range_all(prefix, prefix_end(prefix))
            except Unavailable as e:
                log.info("listing %s failed (%s); retrying", prefix, e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            yield Snapshot(kvs, revision)
            try:
                async for ev in self.watch(prefix, revision + 1):
                    yield ev
            except Compacted:
                log.info("watch on %s fell behind compaction; re-listing", prefix)


def _never_sent(e: aetcd.ConnectionFailedError) -> bool:
    """gRPC could not connect to the member at all: the request never left this process."""
    text = str(e).lower()
    return "failed to connect" in text or "connection refused" in text


def _refusal(op: str, e: aetcd.ClientError) -> Exception:
    """What etcd's refusal means for the caller. Out of space and over-size requests are not
    outages: retrying them as if etcd were down would only repeat the refusal."""
    text = str(e)
    if _NO_SPACE in text:
        return StorageFull(f"etcd is out of space (NOSPACE alarm) on {op}", retry_after=10)
    if "permission denied" in text or "user not found" in text:  # RBAC (``etcd_rbac.py``)
        return PermissionDenied(f"etcd refused {op}: {text} (this process's etcd user may not)")
    if isinstance(e, aetcd.InvalidArgumentError) or _TOO_LARGE in text:
        return Rejected(f"etcd refused {op}: {text}")
    return Unavailable(f"etcd refused {op}: {text}")


async def _close(client: aetcd.Client) -> None:
    """Close a client, giving up after a second: aetcd's close waits for its watch stream's
    request handler, which can stay stuck once the member went away (seen after an etcd
    restart: the call that failed over, a reaper's range, then hung forever)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await client.close()


def _host_port(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint if "//" in endpoint else f"http://{endpoint}")
    if not parts.hostname:
        raise ValueError(f"etcd endpoint {endpoint!r} has no host")
    return parts.hostname, parts.port or 2379


V = TypeVar("V")


async def follow(
    etcd: Etcd, prefix: bytes, decode: Callable[[KV], V]
) -> AsyncIterator[dict[bytes, V]]:
    """Every key under ``prefix``, decoded, now and after each change (a list-watch kept as a
    dict). For small, slowly changing sets: apps, region heartbeats."""
    values: dict[bytes, V] = {}
    async for item in etcd.list_watch(prefix):
        if isinstance(item, Snapshot):
            values = {kv.key: decode(kv) for kv in item.kvs}
        elif item.kind == "put":
            values[item.kv.key] = decode(item.kv)
        else:
            values.pop(item.kv.key, None)
        yield values


async def get_or_create(etcd: Etcd, key: bytes, value: bytes) -> bytes:
    """The value at ``key``, set to ``value`` if absent (create-if-absent, so two processes
    starting at once agree on one): for the federation's secrets. Read first: with etcd RBAC
    on, edges and agents may read the secrets but not write them (``etcd_rbac.py`` creates
    them), and etcd checks a txn's put even when its compare fails."""
    kv = await etcd.get(key)
    if kv is None:
        await etcd.txn([absent(key)], [put(key, value)])
        kv = await etcd.get(key)
    assert kv is not None
    return kv.value

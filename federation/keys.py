"""Every etcd key Spillover uses, built by pure functions so the layout fits on one screen.

Control keyspace (one cluster, low write rate)::

    {root}/apps/{app}                        app spec (JSON)
    {root}/regions/{region}/{agent}          an agent's heartbeat, under its lease (a region may
                                             have several agents: one per GPU node)
    {root}/edges/{edge}                      an edge's heartbeat, under its lease
    {root}/apikeys/{sha256(key)}             an API key's grant (the key itself is never stored)
    {root}/webhook-secrets/{app}             the app's webhook signing secrets (current, previous)
    {root}/blob-secret                       the key that signs fs blob URLs
    {root}/leaders/{region}                  the agent that decides the region's scaling, leased

Partition keyspace (one per home region; each partition lives in the cluster its config names)::

    {root}/q/{p}/tasks/{id}                  the task record: the truth for status lookups
    {root}/q/{p}/payload/{id}                the request body (written once, at enqueue)
    {root}/q/{p}/result/{id}                 the result body (written once, by the fenced complete);
                                             one of 512 bytes or less is in the record instead
    {root}/q/{p}/events/{id}                 progress and recent log lines, rewritten as they come
    {root}/q/{p}/hooked/{id}                 how the task's webhook delivery goes: attempts, last
                                             error, delivered or given up
    {root}/q/{p}/hook-claims/{id}            the agent delivering the task's webhook, under its
                                             lease: one delivery chain per webhook
    {root}/q/{p}/hooks/{id}                  terminal record of a task with a webhook: what the
                                             region's agents follow to deliver them (the done
                                             index would bring them every task)
    {root}/q/{p}/ready/{app}/{9-prio}/{enq_ns}/{id}
                                             queue entry while queued; the value is the record, so
                                             a claimer moves the task without reading it. Lexical
                                             order is the claim order: priority high, then oldest.
    {root}/q/{p}/claims/{claimer}/{id}       claim, under the claimer's lease (gone when it dies)
    {root}/q/{p}/running/{id}                claim key of a running task; no lease, so the reaper
                                             finds claims whose lease expired
    {root}/q/{p}/done/{expires_ns}/{id}      terminal record, in the order its retention ends
                                             (finished_at + the task's retention): the sweep reads
                                             only what is due; waiters watch it too (one event per
                                             task, not one per write)

Per cluster that holds partitions::

    {root}/quota                             an empty key every batch of new tasks writes, so
                                             etcd's space quota sees the batch (groupcommit.py)
    {root}/storage-keeper                    the agent that compacts and defragments the cluster
                                             when it runs short of space (storage.py), leased
    {root}/idem/{sha256(owner, key)}         idempotency key -> task id, per API key (owner),
                                             whichever of the cluster's partitions the task went
                                             to: a retry homed in another region of the same
                                             cluster finds it
"""

from __future__ import annotations

import hashlib

DEFAULT_ROOT = "/spillover"


def _b(s: str) -> bytes:
    return s.encode()


def prefix_end(prefix: bytes) -> bytes:
    """The smallest key greater than every key that starts with ``prefix`` (etcd's range_end)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"
    return stripped[:-1] + bytes([stripped[-1] + 1])


# -- control keyspace ---------------------------------------------------------------------------


def app(root: str, name: str) -> bytes:
    return _b(f"{root}/apps/{name}")


def apps(root: str) -> bytes:
    return _b(f"{root}/apps/")


def region(root: str, name: str, agent: str) -> bytes:
    return _b(f"{root}/regions/{name}/{agent}")


def regions(root: str) -> bytes:
    return _b(f"{root}/regions/")


def edge(root: str, edge_id: str) -> bytes:
    return _b(f"{root}/edges/{edge_id}")


def edges(root: str) -> bytes:
    return _b(f"{root}/edges/")


def apikey(root: str, digest: str) -> bytes:
    return _b(f"{root}/apikeys/{digest}")


def apikeys(root: str) -> bytes:
    return _b(f"{root}/apikeys/")


def leader(root: str, region_name: str) -> bytes:
    return _b(f"{root}/leaders/{region_name}")


def leaders(root: str) -> bytes:
    return _b(f"{root}/leaders/")


def webhook_secrets(root: str, app_name: str) -> bytes:
    return _b(f"{root}/webhook-secrets/{app_name}")


def webhook_secrets_all(root: str) -> bytes:
    return _b(f"{root}/webhook-secrets/")


def blob_secret(root: str) -> bytes:
    return _b(f"{root}/blob-secret")


# -- partition keyspace -------------------------------------------------------------------------


def partitions(root: str) -> bytes:
    """Every partition's keys: what edges and agents share (``etcd_rbac.py``)."""
    return _b(f"{root}/q/")


def task(root: str, p: str, task_id: str) -> bytes:
    return _b(f"{root}/q/{p}/tasks/{task_id}")


def tasks(root: str, p: str) -> bytes:
    return _b(f"{root}/q/{p}/tasks/")


def payload(root: str, p: str, task_id: str) -> bytes:
    return _b(f"{root}/q/{p}/payload/{task_id}")


def payloads(root: str, p: str) -> bytes:
    return _b(f"{root}/q/{p}/payload/")


def result(root: str, p: str, task_id: str) -> bytes:
    return _b(f"{root}/q/{p}/result/{task_id}")


def events(root: str, p: str, task_id: str) -> bytes:
    return _b(f"{root}/q/{p}/events/{task_id}")


def hooked(root: str, p: str, task_id: str) -> bytes:
    return _b(f"{root}/q/{p}/hooked/{task_id}")


def hook_claim(root: str, p: str, task_id: str) -> bytes:
    return _b(f"{root}/q/{p}/hook-claims/{task_id}")


def hook_claims(root: str, p: str) -> bytes:
    return _b(f"{root}/q/{p}/hook-claims/")


def hook(root: str, p: str, task_id: str) -> bytes:
    return _b(f"{root}/q/{p}/hooks/{task_id}")


def hooks(root: str, p: str) -> bytes:
    return _b(f"{root}/q/{p}/hooks/")


def ready(root: str, p: str, app_name: str, priority: int, enqueued_ns: int, task_id: str) -> bytes:
    # 9 - priority so that lexical order puts priority 9 first; the 20-digit time keeps age order.
    return _b(f"{root}/q/{p}/ready/{app_name}/{9 - priority}/{enqueued_ns:020d}/{task_id}")


def ready_app(root: str, p: str, app_name: str) -> bytes:
    return _b(f"{root}/q/{p}/ready/{app_name}/")


def ready_all(root: str, p: str) -> bytes:
    return _b(f"{root}/q/{p}/ready/")


def claim(root: str, p: str, claimer_id: str, task_id: str) -> bytes:
    return _b(f"{root}/q/{p}/claims/{claimer_id}/{task_id}")


def claims_of(root: str, p: str, claimer_id: str) -> bytes:
    return _b(f"{root}/q/{p}/claims/{claimer_id}/")


def claims_all(root: str, p: str) -> bytes:
    return _b(f"{root}/q/{p}/claims/")


def running(root: str, p: str, task_id: str) -> bytes:
    return _b(f"{root}/q/{p}/running/{task_id}")


def running_all(root: str, p: str) -> bytes:
    return _b(f"{root}/q/{p}/running/")


def done(root: str, p: str, expires_ns: int, task_id: str) -> bytes:
    return _b(f"{root}/q/{p}/done/{expires_ns:020d}/{task_id}")


def done_all(root: str, p: str) -> bytes:
    return _b(f"{root}/q/{p}/done/")


def done_before(root: str, p: str, expires_ns: int) -> bytes:
    """range_end for "every done entry whose retention ended before ``expires_ns``"."""
    return _b(f"{root}/q/{p}/done/{expires_ns:020d}")


def storage_leader(root: str) -> bytes:
    return _b(f"{root}/storage-keeper")


def quota_probe(root: str) -> bytes:
    return _b(f"{root}/quota")


def idempotency(root: str, owner: str | None, key: str) -> bytes:
    """Scoped per API key (``owner``, the key's name; None with auth off): two tenants never see
    each other's keys. Hashed: the client's key is arbitrary text and may be long."""
    digest = hashlib.sha256(f"{owner or ''}\n{key}".encode()).hexdigest()
    return _b(f"{root}/idem/{digest}")


def idempotency_all(root: str) -> bytes:
    return _b(f"{root}/idem/")


def task_id_of(key: bytes) -> str:
    """The task id at the end of any per-task key (tasks/, ready/, claims/, running/, done/)."""
    return key.rsplit(b"/", 1)[1].decode()

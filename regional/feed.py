"""A task whose payload lives in a blob (over the inline limit): a call of its own to the replica
(``RunStream``), the payload streamed into it from the blob store in chunks. Not on the
replica's session: the call's own flow control holds back this body alone (up to 1 GiB), never
the other tasks there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from federation.aio import cancel_and_wait
from federation.blobs import BlobRef, BlobStore, BlobUnavailable, checked
from regional.outcomes import Failure
from regional.rpc import replica_pb2 as pb
from regional.rpc import replica_pb2_grpc as pb_grpc


class BlobCall:
    """The call's events, as a session's run gives them (``session.Run``)."""

    def __init__(
        self, stub: pb_grpc.ReplicaStub, request: pb.RunRequest, ref: BlobRef, blobs: BlobStore
    ) -> None:
        self.call = stub.RunStream()
        request.size = ref.size
        self.feeding = asyncio.create_task(self._feed(request, ref, blobs))

    def __aiter__(self) -> AsyncIterator[pb.RunEvent]:
        return self.call.__aiter__()  # type: ignore[no-any-return]

    def cancel(self) -> None:
        self.call.cancel()  # a no-op once the call ended; else it frees the replica's

    async def _feed(self, request: pb.RunRequest, ref: BlobRef, blobs: BlobStore) -> None:
        """On a broken or altered blob the call is cancelled and the task fails, instead of the
        replica being taken for dead."""
        try:
            await self.call.write(pb.RunInput(request=request))
            async for chunk in checked(ref, blobs.read(ref)):
                await self.call.write(pb.RunInput(chunk=chunk))
            await self.call.done_writing()
        except BlobUnavailable:
            self.call.cancel()
            raise

    def failure(self) -> Failure | None:
        """Why feeding the payload failed, if the blob (not the replica) was at fault."""
        f = self.feeding
        if not f.done() or f.cancelled():
            return None
        error = f.exception()
        if not isinstance(error, BlobUnavailable):
            return None
        return Failure("payload_unavailable", error.message)

    async def close(self) -> None:
        self.cancel()
        await cancel_and_wait([self.feeding])
        if not self.feeding.cancelled():
            self.feeding.exception()  # seen (the call's own error said what happened)

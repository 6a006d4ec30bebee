"""The S3 blob store (the AWS deployment's per-region bucket), over aiobotocore.

Small blobs are one ``PutObject``; larger ones a multipart upload of 8 MiB parts, so a 1 GiB body
is never in memory; a failed upload is aborted, so it leaves nothing (not even parts).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from federation.blobs import CHUNK, BadBody, BlobRef, BlobUnavailable, rechunk

PART = 8 << 20  # S3 wants ≥ 5 MiB parts but the last; 8 MiB keeps 1 GiB at 128 parts


class S3Store:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        """``client``: an open aiobotocore S3 client (its owner closes it)."""
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    async def write(self, name: str, chunks: AsyncIterable[bytes], size: int | None) -> BlobRef:
        key, h, written = self.prefix + name, hashlib.sha256(), 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for part in rechunk(chunks, PART):
                written += len(part)
                if size is not None and written > size:
                    raise BadBody(f"body is longer than its Content-Length of {size}")
                h.update(part)
                if len(part) < PART and upload_id is None:  # all of it fits one request
                    await self.client.put_object(Bucket=self.bucket, Key=key, Body=part)
                    continue
                if upload_id is None:
                    created = await self.client.create_multipart_upload(Bucket=self.bucket, Key=key)
                    upload_id = created["UploadId"]
                n = len(parts) + 1
                sent = await self.client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=part
                )
                parts.append({"PartNumber": n, "ETag": sent["ETag"]})
            if size is not None and written != size:
                raise BadBody(f"body ended after {written} of its {size} bytes")
            if upload_id is not None:
                await self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                )  # fmt: skip
            elif written == 0:
                await self.client.put_object(Bucket=self.bucket, Key=key, Body=b"")
        except BaseException:
            if upload_id is not None:
                await self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                )
            elif written:
                await self.client.delete_object(Bucket=self.bucket, Key=key)
            raise
        return BlobRef(url=self._url(key), size=written, sha256=h.hexdigest())

    async def read(self, ref: BlobRef) -> AsyncIterator[bytes]:
        bucket, _, key = ref.url.removeprefix("s3://").partition("/")
        try:
            response = await self.client.get_object(Bucket=bucket, Key=key)
            async with response["Body"] as body:
                while chunk := await body.read(CHUNK):
                    yield chunk
        except (ClientError, BotoCoreError) as e:
            raise BlobUnavailable(f"blob {ref.url}: {e}") from None

    async def delete(self, name: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)

    async def listing(self) -> list[tuple[str, float]]:
        out = []
        pages = self.client.get_paginator("list_objects_v2")
        async for page in pages.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"].removeprefix(self.prefix)
                out.append((name, obj["LastModified"].timestamp()))
        return out

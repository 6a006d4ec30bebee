"""The bundled demo app: a real torch model, a stand-in for GPU time, and an echo.

Handler API: ``load()`` once per replica, then one method per function. It imports only
``spillover``, as any user's app does (an import-linter contract holds it to that).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from spillover import Body, Context, batch, stream


class Model:
    def load(self) -> None:
        import torch  # imported here: a replica pays for it once, in load()

        torch.manual_seed(0)  # seeded weights: no download, same outputs everywhere
        torch.set_num_threads(1)
        self.torch = torch
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, 256), torch.nn.ReLU(), torch.nn.Linear(256, 4)
        ).eval()

    @batch(max_batch_size=32, max_batch_wait_ms=2)
    def predict(self, payloads: list[bytes], ctxs: list[Context]) -> list[dict[str, Any]]:
        """JSON ``{"inputs": [[16 floats], ...]}`` → ``{"outputs": [[4 floats], ...]}``.

        Concurrent requests are batched: their rows go through the model in one forward pass."""
        rows = [json.loads(p)["inputs"] for p in payloads]
        with self.torch.inference_mode():
            batch_in = self.torch.tensor([r for rs in rows for r in rs], dtype=self.torch.float32)
            outputs = self.net(batch_in).tolist()
        results, start = [], 0
        for rs in rows:
            results.append({"outputs": outputs[start : start + len(rs)]})
            start += len(rs)
        return results

    def sleep(self, payload: bytes, ctx: Context) -> dict[str, Any]:
        """JSON ``{"seconds": s}``: holds a slot for s seconds, as a forward pass on a GPU would."""
        seconds = float(json.loads(payload or b"{}").get("seconds", 1.0))
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not ctx.cancelled:
            time.sleep(min(left, 0.05))
        return {
            "slept": seconds,
            "region": os.environ.get("SPILLOVER_REGION", ""),
            "replica": os.environ.get("SPILLOVER_REPLICA", ""),
        }

    @stream
    async def echo(self, body: Body, ctx: Context) -> AsyncIterator[bytes]:
        """The body back, any size up to the app's limit, streamed: a 1 GiB echo holds a few
        MiB at a time, not 1 GiB."""
        async for chunk in body:
            yield chunk

"""The bundled demo app: a real torch model, a stand-in for GPU time, and an echo.

Handler API: ``load()`` once per replica, then one method per function.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any


class Model:
    def load(self) -> None:
        import torch  # imported here: a replica pays for it once, in load()

        torch.manual_seed(0)  # seeded weights: no download, same outputs everywhere
        torch.set_num_threads(1)
        self.torch = torch
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, 256), torch.nn.ReLU(), torch.nn.Linear(256, 4)
        ).eval()

    def predict(self, payload: bytes, ctx: Any) -> dict[str, Any]:
        """JSON ``{"inputs": [[16 floats], ...]}`` → ``{"outputs": [[4 floats], ...]}``."""
        inputs = json.loads(payload)["inputs"]
        with self.torch.inference_mode():
            outputs = self.net(self.torch.tensor(inputs, dtype=self.torch.float32))
        return {"outputs": outputs.tolist()}

    def sleep(self, payload: bytes, ctx: Any) -> dict[str, Any]:
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

    def echo(self, payload: bytes, ctx: Any) -> bytes:
        return payload

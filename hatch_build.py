"""Build hook: generate the gRPC code from regional/rpc/replica.proto with grpcio-tools.

The generated modules are build output (git-ignored), never edited by hand; an editable install
(`pip install -e .`, what `make test` does) writes them next to the proto.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ProtoBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "protoc"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        generate(Path(self.root))
        build_data["artifacts"].append("regional/rpc/*_pb2*.py*")


def generate(root: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    for proto in sorted((root / "regional" / "rpc").glob("*.proto")):
        # -I at the repo root makes the generated code import `regional.rpc.replica_pb2`.
        rc = protoc.main(
            [
                "protoc",
                f"-I{root}",
                f"-I{include}",
                f"--python_out={root}",
                f"--pyi_out={root}",
                f"--grpc_python_out={root}",
                str(proto),
            ]
        )
        if rc != 0:
            raise RuntimeError(f"protoc failed on {proto} (exit {rc})")

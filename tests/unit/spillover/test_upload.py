"""Bodies: bytes as they are, files streamed in chunks and sent again on a retry, JSON for the
rest; a pipe is sent once."""

from __future__ import annotations

import asyncio
import io
import os
from pathlib import Path

import pytest

from spillover.upload import CHUNK, Upload


def sent(u: Upload) -> bytes:
    content = u.content()
    return content if isinstance(content, bytes) else b"".join(content)


async def asent(u: Upload) -> bytes:
    content = u.acontent()
    return content if isinstance(content, bytes) else b"".join([c async for c in content])


def test_bytes_json_and_their_headers() -> None:
    assert Upload(b"\x00\x01").headers() == {"Content-Type": "application/octet-stream",
                                            "Content-Length": "2"}  # fmt: skip
    u = Upload({"seconds": 2})
    assert sent(u) == b'{"seconds": 2}' and u.headers()["Content-Type"] == "application/json"
    assert sent(Upload("a string is JSON")) == b'"a string is JSON"'
    assert Upload(b"x", content_type="image/png").headers()["Content-Type"] == "image/png"


def test_a_path_streams_in_chunks_and_replays(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK + 5)
    (tmp_path / "body").write_bytes(data)
    u = Upload(tmp_path / "body")
    assert u.replayable and u.size == len(data)
    content = u.content()
    assert not isinstance(content, bytes)
    assert [len(c) for c in content] == [CHUNK, CHUNK, 5]
    assert sent(u) == data and asyncio.run(asent(u)) == data


def test_a_file_object_is_rewound_to_where_it_stood() -> None:
    f = io.BytesIO(b"headerBODY")
    f.seek(6)
    u = Upload(f)
    assert (u.size, u.replayable) == (4, True)
    assert sent(u) == b"BODY" and sent(u) == b"BODY"


def test_a_pipe_is_sent_once_without_a_length() -> None:
    r, w = os.pipe()
    os.write(w, b"streamed")
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        u = Upload(pipe)
        assert not u.replayable and "Content-Length" not in u.headers()
        assert sent(u) == b"streamed"
        with pytest.raises(RuntimeError, match="sent only once"):
            sent(u)

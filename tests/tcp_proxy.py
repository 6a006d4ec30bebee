"""A TCP proxy on loopback for network faults this kernel cannot make (it has no netem): a fixed
delay each way (a WAN round trip between a region and a remote etcd), a cut (a blackhole:
connections stay open and no byte passes either way, as when a link drops every packet and TCP
keeps retransmitting) that heals with the connections intact, and a reset (every connection
through it closed at once, as a member restart or a middlebox drops them). Order is kept per
direction."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target: tuple[str, int], delay: float = 0.0) -> None:
        self.target = target
        self.delay = delay  # one way: a round trip costs twice this
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._open = asyncio.Event()  # cleared while cut
        self._open.set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self) -> None:
        """From now on no byte passes, on open connections or new ones, until :meth:`heal`."""
        self._open.clear()

    def heal(self) -> None:
        self._open.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        self._pipes.add(me)  # closed with the proxy even while it waits for a heal
        try:
            await self._open.wait()  # while cut, a new connection is accepted and goes nowhere
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        finally:
            self._pipes.discard(me)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await chunks.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                await self._open.wait()  # a chunk read just before a cut waits for the heal
                if not data:
                    break
                dst.write(data)
                await dst.drain()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                await self._open.wait()  # not reading while cut: the sender's TCP window fills
                data = await src.read(1 << 16)
                if not data:
                    break
                chunks.put_nowait((loop.time() + self.delay, data))
            chunks.put_nowait((loop.time() + self.delay, b""))
            await sender
        except (ConnectionError, OSError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(Exception):
                dst.close()

    async def reset(self) -> None:
        """Close every connection through it now, both ends; new ones pass."""
        pipes = list(self._pipes)
        for task in pipes:
            task.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.reset()

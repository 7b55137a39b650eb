"""A TCP proxy on loopback that a test can cut: a network partition between a client and etcd.

Stopping etcd cuts every client at once; the proxy cuts only the one under
test, so that another client can change (and compact) etcd meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib


class Partition:
    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._open = True
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Partition:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """Drop every connection and refuse new ones until :meth:`heal`."""
        self._open = False
        for writer in list(self._writers):
            writer.transport.abort()

    def heal(self) -> None:
        self._open = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if not self._open:
                writer.transport.abort()
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._target)
            except OSError:
                writer.transport.abort()
                return
            self._writers |= {writer, up_writer}
            try:
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
            finally:
                self._writers -= {writer, up_writer}
                for w in (writer, up_writer):
                    w.transport.abort()
        finally:
            self._tasks.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()  # one side gone: end the other too

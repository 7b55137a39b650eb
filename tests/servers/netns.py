"""Network namespaces for cluster members that a test must partition, and relays that
let processes on the host's loopback reach them.

    with Network(3) as net:                      # a hub bridge and 3 member namespaces
        net.command(0, ["etcd", ...])            # the argv that runs etcd inside member 0
        relay = net.relay(0, 2379)               # host 127.0.0.1:relay.port -> its 2379
        net.isolate(0) ... net.rejoin(0)         # member 0 cut off from the others, and back

Each member namespace holds one end of a veth pair whose other end is on a
bridge in a hub namespace: members reach each other at ``net.address(i)``
(a private address that exists only inside these namespaces). ``isolate`` takes
a member's link down, so that packets between it and the others are dropped (no
reset: what a network partition looks like). Clients on the host reach a member
through a relay into that member's own loopback, which a partition leaves alone:
a client stays connected to an isolated member, as one on the far side of a
real partition does.

The namespaces have no names (nothing under /run/netns, which other tools
may clean up): each is held by a small process of ours (``unshare --net cat``)
reading a pipe from this process. ``close`` ends them; if this process dies
first, the pipe closes, they end, and the kernel frees the namespaces: nothing
is left behind, however a run ends. Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Self

__all__ = ["Namespace", "Network", "Relay"]

_CLONE_NEWNET = 0x40000000
_SUBNET = "10.77.0"  # only inside the namespaces of one Network
_libc = ctypes.CDLL(None, use_errno=True)
_setns_lock = threading.Lock()


class Namespace:
    """A new network namespace, alive while its holder process runs."""

    def __init__(self) -> None:
        own = Path("/proc/self/ns/net").stat().st_ino
        # The holder reads our pipe until it closes: it ends with us, whatever the cause.
        self._holder = subprocess.Popen(["unshare", "--net", "--", "cat"],
                                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self.path = Path(f"/proc/{self._holder.pid}/ns/net")
        deadline = time.monotonic() + 10
        while True:  # until unshare has moved it into the new namespace
            if self._holder.poll() is not None:
                raise RuntimeError(f"unshare --net exited with {self._holder.returncode}")
            with contextlib.suppress(OSError):
                if self.path.stat().st_ino != own:
                    break
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("unshare --net: no new namespace within 10s")
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self._holder.pid

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside (nsenter, not ``ip netns exec``, which remounts /sys)."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def ip(self, *args: str) -> None:
        done = subprocess.run(self.command(["ip", *args]), capture_output=True, text=True,
                              timeout=20, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")

    def close(self) -> None:
        if self._holder.poll() is None:
            assert self._holder.stdin is not None
            self._holder.stdin.close()
            try:
                self._holder.wait(5)
            except subprocess.TimeoutExpired:
                self._holder.kill()
                self._holder.wait()
        elif self._holder.stdin is not None:
            self._holder.stdin.close()


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


def socket_in(netns: Path) -> socket.socket:
    """A TCP socket that belongs to the network namespace at ``netns``.

    The calling thread enters it only while the socket is created (a socket
    stays in the namespace it was made in, whichever thread uses it).
    """
    with _setns_lock, open("/proc/thread-self/ns/net", "rb") as own, open(netns, "rb") as there:
        _setns(there.fileno())
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(own.fileno())


class Relay:
    """``127.0.0.1:port`` on the host, forwarded byte for byte to ``host:target_port``
    inside a network namespace. Each accepted connection gets its own connection
    inside; when either side closes, so does the other."""

    def __init__(self, loop: asyncio.AbstractEventLoop, netns: Path, target_port: int,
                 host: str = "127.0.0.1") -> None:
        self._loop = loop
        self.netns = netns
        self.target = (host, target_port)
        self._tasks: set[asyncio.Task[None]] = set()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accepted, "127.0.0.1", 0)

    async def _accepted(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            inner = socket_in(self.netns)
            inner.setblocking(False)
            try:
                async with asyncio.timeout(5):
                    await self._loop.sock_connect(inner, self.target)
            except (OSError, TimeoutError):
                inner.close()
                return
            there_reader, there_writer = await asyncio.open_connection(sock=inner)
            try:
                await asyncio.gather(_pump(reader, there_writer), _pump(there_reader, writer))
            finally:
                there_writer.close()
        except asyncio.CancelledError:
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()  # a reset on one side: reset the other


class Network:
    """A hub namespace with a bridge and ``size`` member namespaces on it."""

    def __init__(self, size: int) -> None:
        if size > 200:
            raise ValueError("at most 200 members")
        self.size = size
        self.hub: Namespace | None = None
        self.members: list[Namespace] = []
        self._relays: list[Relay] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> Self:
        try:
            self.hub = hub = Namespace()
            hub.ip("link", "add", "br0", "type", "bridge")
            hub.ip("link", "set", "br0", "up")
            for i in range(self.size):
                member = Namespace()
                self.members.append(member)
                member.ip("link", "set", "lo", "up")
                hub.ip("link", "add", f"m{i}", "type", "veth", "peer", "name", "eth0",
                       "netns", str(member.pid))
                member.ip("addr", "add", f"{self.address(i)}/24", "dev", "eth0")
                member.ip("link", "set", "eth0", "up")
                hub.ip("link", "set", f"m{i}", "master", "br0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop the relays and let the namespaces go (processes still inside keep theirs
        until they end; end them first)."""
        for relay in self._relays:
            relay.close()
        self._relays.clear()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop.close()
            self._loop = None
        for namespace in [*self.members, *([self.hub] if self.hub else [])]:
            namespace.close()
        self.members.clear()
        self.hub = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- members --------------------------------------------------------------
    def address(self, member: int) -> str:
        """The member's address on the bridge (reachable from the other members)."""
        return f"{_SUBNET}.{11 + member}"

    def path(self, member: int) -> Path:
        return self.members[member].path

    def command(self, member: int, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the member's namespace."""
        return self.members[member].command(argv)

    def relay(self, member: int, port: int) -> Relay:
        """A relay from the host's loopback to ``port`` on the member's loopback."""
        relay = Relay(self._relay_loop(), self.path(member), port)
        self._relays.append(relay)
        return relay

    def isolate(self, member: int) -> None:
        """Cut the member off from the others (its relays keep working)."""
        assert self.hub is not None
        self.hub.ip("link", "set", f"m{member}", "down")

    def rejoin(self, member: int) -> None:
        assert self.hub is not None
        self.hub.ip("link", "set", f"m{member}", "up")

    def _relay_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="netns-relays", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop

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

Names are unique per run (``cnt<pid>x<n>-...``), and ``close`` (also at
interpreter exit) deletes them. A run killed before it could clean up leaves
them behind: the next ``Network`` deletes those whose process has ended, so
their number stays bounded. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import itertools
import os
import re
import socket
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Self

__all__ = ["Network", "Relay"]

_NETNS_DIR = Path("/run/netns")
_CLONE_NEWNET = 0x40000000
_NAME = re.compile(r"^cnt(\d+)x\d+-")
_SUBNET = "10.77.0"  # only inside the namespaces of one Network
_count = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)
_setns_lock = threading.Lock()


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete_leftovers() -> None:
    """Namespaces of earlier runs whose process has ended (killed before cleaning up)."""
    if not _NETNS_DIR.is_dir():
        return
    for path in _NETNS_DIR.iterdir():
        found = _NAME.match(path.name)
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(RuntimeError):
                _ip("netns", "delete", path.name)


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
        self.prefix = f"cnt{os.getpid()}x{next(_count)}"
        self.hub = f"{self.prefix}-hub"
        self.members = [f"{self.prefix}-m{i}" for i in range(size)]
        self._created: list[str] = []
        self._relays: list[Relay] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> Self:
        _delete_leftovers()
        atexit.register(self.close)
        try:
            self._add_netns(self.hub)
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.hub, "link", "set", "br0", "up")
            for i, name in enumerate(self.members):
                self._add_netns(name)
                _ip("-n", name, "link", "set", "lo", "up")
                _ip("-n", self.hub, "link", "add", f"m{i}", "type", "veth",
                    "peer", "name", "eth0", "netns", name)
                _ip("-n", name, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
                _ip("-n", name, "link", "set", "eth0", "up")
                _ip("-n", self.hub, "link", "set", f"m{i}", "master", "br0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def _add_netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._created.append(name)

    def close(self) -> None:
        """Stop the relays and delete the namespaces (processes still inside them lose
        their network; end them first)."""
        for relay in self._relays:
            relay.close()
        self._relays.clear()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self._loop.close()
            self._loop = None
        for name in reversed(self._created):
            with contextlib.suppress(RuntimeError):
                _ip("netns", "delete", name)
        self._created.clear()
        atexit.unregister(self.close)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- members --------------------------------------------------------------
    def address(self, member: int) -> str:
        """The member's address on the bridge (reachable from the other members)."""
        return f"{_SUBNET}.{11 + member}"

    def path(self, member: int) -> Path:
        return _NETNS_DIR / self.members[member]

    def command(self, member: int, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside the member's namespace (nsenter, not ``ip netns exec``,
        which remounts /sys)."""
        return ["nsenter", f"--net={self.path(member)}", "--", *argv]

    def relay(self, member: int, port: int) -> Relay:
        """A relay from the host's loopback to ``port`` on the member's loopback."""
        relay = Relay(self._relay_loop(), self.path(member), port)
        self._relays.append(relay)
        return relay

    def isolate(self, member: int) -> None:
        """Cut the member off from the others (its relays keep working)."""
        _ip("-n", self.hub, "link", "set", f"m{member}", "down")

    def rejoin(self, member: int) -> None:
        _ip("-n", self.hub, "link", "set", f"m{member}", "up")

    def _relay_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name=f"relays-{self.prefix}",
                                      daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        return self._loop


"""Listening sockets and an accept loop that no client can starve of descriptors.

asyncio's own server accepts until ``accept()`` fails; when the process is out
of descriptors (EMFILE) it logs a traceback for every attempt and stops
accepting for a second, so a thousand silent connections made every probe
time out and wrote megabytes of tracebacks. Each listener here instead

* holds at most ``max_connections``. A client sends its request as soon as it
  connects, so it is waiting when the connection is accepted (a peek tells): at
  the limit such a connection closes the longest-held one that never sent a
  byte, else the longest-held idle one (no request in progress), and a new
  connection that has sent nothing is closed at once. A flood of silent
  connections costs an accept and a close each, and never keeps a request out;
* keeps ``reserve`` descriptors open on /dev/null (the probe listener's): when
  ``accept()`` fails for want of a descriptor, one is given up and the
  connection is taken; the reserve is refilled as descriptors come free;
* counts what it refused and logs it at most once per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl as ssl_module
from collections.abc import Callable
from dataclasses import dataclass

from ._ratelimit import RateLimitedLog

log = logging.getLogger("sidecar.rest")

#: ``accept()`` errors that mean "no descriptor or memory for now", not "this peer failed".
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Seconds to stop accepting when nothing could be freed (the backlog keeps the peers).
PAUSE = 0.05
#: Seconds a listener without a reserve waits after closing a connection for want of
#: descriptors (see _accept).
YIELD_TO_RESERVE = 0.01
#: Connections taken per wake-up, so that one listener cannot hold the loop.
BATCH = 64
BACKLOG = 1024
TLS_HANDSHAKE_TIMEOUT = 10.0
#: Seconds a new connection that has sent nothing may wait at the limit for its request,
#: and how many may wait at once (the oldest is closed for a newer one).
PROBATION = 0.1
PROBATION_SLOTS = 64

Factory = Callable[[], asyncio.BaseProtocol]


@dataclass
class ListenerStats:
    """Counts of one listener (exported by the metrics plugin)."""

    accepted: int = 0
    #: Idle connections closed to make room for a new one at the limit.
    evicted: int = 0
    #: New connections closed at once at the limit: silent ones, or every held one busy.
    refused: int = 0
    #: ``accept()`` failures (EMFILE, ENFILE, ...).
    accept_errors: int = 0
    #: Reserve descriptors given up to accept while the process had none left.
    reserve_used: int = 0
    open: int = 0



def _has_request(conn: socket.socket) -> bool:
    """Whether bytes wait on ``conn`` (not an end of stream, not nothing yet)."""
    try:
        return bool(conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:
        return False


def bind(host: str, port: int, what: str, backlog: int = BACKLOG) -> list[socket.socket]:
    """Listening sockets for every address of ``host`` (OSError naming ``what`` on failure)."""
    try:
        infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                   0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise OSError(errno.EINVAL, f"cannot listen on {what}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise OSError(exc.errno, f"cannot listen on {what}: {exc.strerror or exc}") from None
    return sockets


class Acceptor:
    """Accepts on ``sockets`` in the running loop and hands each connection to ``factory``.

    ``busy(transport)`` says whether a held connection has a request in progress
    (those are never closed to make room).
    """

    def __init__(self, sockets: list[socket.socket], factory: Factory, *, name: str,
                 max_connections: int, limited: RateLimitedLog, reserve: int = 0,
                 ssl: ssl_module.SSLContext | None = None,
                 busy: Callable[[asyncio.BaseTransport], bool] | None = None,
                 stats: ListenerStats | None = None) -> None:
        if max_connections < 1:
            raise ValueError(f"{name}: max connections must be at least 1")
        self.sockets = sockets
        self.name = name
        self.max_connections = max_connections
        self.stats = stats or ListenerStats()
        self._factory = factory
        self._limited = limited
        self._reserve_size = reserve
        self._reserve: list[int] = []
        self._ssl = ssl
        self._busy = busy or (lambda transport: False)
        #: Held connections, oldest first, and whether each has sent anything.
        self._held: dict[asyncio.BaseTransport, bool] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: TLS handshakes under way (each up to TLS_HANDSHAKE_TIMEOUT).
        self._handshakes = 0
        #: New connections at the limit, waiting PROBATION for their first bytes.
        self._probation: dict[socket.socket, asyncio.TimerHandle] = {}
        self._paused: set[socket.socket] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def start(self) -> None:
        """Start accepting in the running loop."""
        self._loop = asyncio.get_running_loop()
        self.refill()
        for sock in self.sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    # -- descriptors ------------------------------------------------------------------
    def refill(self) -> None:
        """Take back the reserve descriptors given up (call it now and then)."""
        while len(self._reserve) < self._reserve_size:
            try:
                self._reserve.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                return

    def _give_up_reserve(self) -> bool:
        if not self._reserve:
            return False
        os.close(self._reserve.pop())
        self.stats.reserve_used += 1
        return True

    def prune(self) -> int:
        """Forget the connections that have closed; how many are held."""
        held = self._held
        if any(t.is_closing() for t in held):
            self._held = {t: spoke for t, spoke in held.items() if not t.is_closing()}
        self.stats.open = len(self._held)
        return len(self._held)

    def spoke(self, transport: asyncio.BaseTransport) -> None:
        """``transport``'s client has sent something (for protocols that can tell)."""
        if transport in self._held:
            self._held[transport] = True

    def _make_room(self) -> bool:
        """At the limit: close one held connection; False if every one is busy."""
        if self.prune() + self._handshakes < self.max_connections:
            return True
        return self._evict()

    def _evict(self) -> bool:
        """Close the longest-held silent connection, else the longest-held idle one;
        False if every one is busy."""
        busy = self._busy
        for silent_only in (True, False):
            for transport, spoke in self._held.items():
                if (silent_only and spoke) or transport.is_closing() or busy(transport):
                    continue
                del self._held[transport]
                transport.close()
                self.stats.evicted += 1
                return True
        return False

    # -- accepting ---------------------------------------------------------------------
    def _accept(self, sock: socket.socket) -> None:
        for _ in range(BATCH):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES:
                    self.stats.accept_errors += 1
                    if self._give_up_reserve():
                        continue
                    evicted = self.prune() > 0 and self._evict()
                    self._limited.error(
                        ("accept", self.name),
                        "%s: accept() failed, the process is out of descriptors (%s): %s "
                        "held connections; %s", self.name, os.strerror(exc.errno or 0),
                        len(self._held),
                        "closed the longest idle one" if evicted else "pausing accept")
                    # An evicted transport frees its descriptor on the next loop turn. A
                    # listener without a reserve (the REST port) waits a little before it
                    # takes it: accepting again at once would also take every descriptor the
                    # probe listener frees (in its own thread) before it can refill its reserve.
                    if not evicted:
                        self._pause(sock, PAUSE)
                    else:
                        self._pause(sock, 0.0 if self._reserve_size else YIELD_TO_RESERVE)
                    return
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # that peer gave up (or a firewall said no): the next one
                self.stats.accept_errors += 1
                self._limited.error(("accept", self.name), "%s: accept() failed: %s",
                                    self.name, exc)
                self._pause(sock, PAUSE)
                return
            self._admit(conn)

    def _pause(self, sock: socket.socket, delay: float) -> None:
        loop = self._loop
        if loop is None or sock in self._paused:
            return
        self._paused.add(sock)
        loop.remove_reader(sock.fileno())
        loop.call_later(delay, self._resume, sock)

    def _resume(self, sock: socket.socket) -> None:
        self._paused.discard(sock)
        if not self._closed and self._loop is not None:
            self.refill()
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def _admit(self, conn: socket.socket) -> None:
        spoke = _has_request(conn)
        # Plain connections still being set up (a task each, for one turn of the loop) are
        # not counted: they cannot be closed to make room, and would let a burst refuse
        # everyone; each is checked against the limit once it is held (_connect). TLS
        # handshakes, which a client can drag out, count.
        at_limit = len(self._held) + self._handshakes >= self.max_connections \
            and self.prune() + self._handshakes >= self.max_connections
        if at_limit and not spoke:
            # At the limit only a connection with a request waiting gets in. This one may
            # be a client whose request is a moment behind its connect: it waits PROBATION
            # for it, a silent one is then closed (a flood of them costs next to nothing).
            self._on_probation(conn)
            return
        if at_limit and not self._make_room():
            self._refuse(conn, "every held one is busy")
            return
        self._hold(conn, spoke)

    def _refuse(self, conn: socket.socket, why: str) -> None:
        conn.close()
        self.stats.refused += 1
        self._limited.warning(
            ("limit", self.name), "%s: at its limit of %d connections: new ones that send "
            "nothing are closed, others close the longest-held silent or idle one (%s)",
            self.name, self.max_connections, why)

    def _on_probation(self, conn: socket.socket) -> None:
        assert self._loop is not None
        if len(self._probation) >= PROBATION_SLOTS:  # the oldest has had its chance
            self._probation_over(next(iter(self._probation)))
        handle = self._loop.call_later(PROBATION, self._probation_over, conn)
        self._probation[conn] = handle
        self._loop.add_reader(conn.fileno(), self._spoke_on_probation, conn)

    def _end_probation(self, conn: socket.socket) -> None:
        handle = self._probation.pop(conn)
        handle.cancel()
        if self._loop is not None:
            self._loop.remove_reader(conn.fileno())

    def _probation_over(self, conn: socket.socket) -> None:
        if conn not in self._probation:
            return
        # Its request may have come without the reader having run yet (a batch of accepts
        # in one callback, or this timer first in the same turn): look before closing.
        if _has_request(conn):
            self._spoke_on_probation(conn)
            return
        self._end_probation(conn)
        self._refuse(conn, "it sent nothing")

    def _spoke_on_probation(self, conn: socket.socket) -> None:
        self._end_probation(conn)
        if self.prune() + self._handshakes >= self.max_connections and not self._make_room():
            self._refuse(conn, "every held one is busy")
            return
        self._hold(conn, True)

    def _hold(self, conn: socket.socket, spoke: bool) -> None:
        self.stats.accepted += 1
        if conn.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self._loop is not None
        if self._ssl is not None:
            self._handshakes += 1  # until _connect ends
        task = self._loop.create_task(self._connect(conn, spoke))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, conn: socket.socket, spoke: bool) -> None:
        assert self._loop is not None
        try:
            transport, _ = await self._loop.connect_accepted_socket(
                self._factory, conn, ssl=self._ssl,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self._ssl else None)
        except (OSError, ssl_module.SSLError, TimeoutError, ConnectionError) as exc:
            conn.close()
            log.debug("%s: a connection failed before it was set up: %s", self.name, exc)
            return
        finally:
            if self._ssl is not None:
                self._handshakes -= 1
        if self._closed:
            transport.close()
            return
        self._held[transport] = spoke or self._held.get(transport, False)
        if len(self._held) > self.max_connections:
            self._make_room()
        self.stats.open = len(self._held)

    # -- the end -----------------------------------------------------------------------
    def stop_accepting(self) -> None:
        """Close the listening sockets; held connections stay."""
        if self._closed:
            return
        self._closed = True
        loop = self._loop
        for sock in self.sockets:
            if loop is not None and sock not in self._paused and sock.fileno() >= 0:
                loop.remove_reader(sock.fileno())
            sock.close()
        for task in self._tasks:
            task.cancel()
        for conn in list(self._probation):
            self._end_probation(conn)
            conn.close()
        while self._reserve:
            os.close(self._reserve.pop())

    def close_all(self) -> None:
        """Close every held connection (after :meth:`stop_accepting`)."""
        for transport in list(self._held):
            transport.close()
        self._held.clear()
        self.stats.open = 0

"""The probe listener: ``/liveness`` and ``/readiness`` on a port of their own, in a thread
of their own.

Why apart from the REST port (as Envoy and Istio keep their health port apart):
the kubelet restarts the pod when its probes fail, and the REST port serves
anyone who can reach the pod (``/metrics`` is open). On one port and one event
loop, whatever a client makes the sidecar do delays the probes; here

* the answers are the probe source's (the probe plugin's), rendered in the
  event loop once per state revision; this thread only reads them, so neither
  the REST port's load nor a slow handler can delay a probe by more than the
  interpreter's switch interval, which it lowers to 1 ms;
* a minimal HTTP/1.1 protocol (GET and HEAD, keep-alive, heads up to 8 KiB,
  no bodies) answers in a few microseconds, without routing or middleware;
* connections are capped and the oldest are closed to make room, idle ones
  after ``IDLE_TIMEOUT``, and a reserve of descriptors is held back, so that
  a connection flood on either port never leaves the kubelet unanswered;
* the event loop must turn at least every ``stall_limit`` seconds: a loop that
  is stuck (a handler blocking it) makes both probes 503, as a probe served
  by that loop would have timed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable
from email.utils import formatdate

from ._accept import Acceptor, ListenerStats
from ._ratelimit import RateLimitedLog
from .api import ProbeAnswer, ProbeSource

log = logging.getLogger("sidecar.rest")

#: Request heads (request line and header fields) larger than this get 431.
MAX_HEAD = 8192
#: A connection without a complete request for this long is closed.
IDLE_TIMEOUT = 10.0
#: Descriptors held back for accepting probes when the process has none left.
RESERVE = 8
#: Distinct request heads remembered parsed (a client sends the same head every time).
_PARSED_HEADS = 256
#: Seconds a thread that wants the interpreter waits before the one holding it must let
#: go (Python's default is 5 ms): a probe waits at most this long for a busy event loop.
SWITCH_INTERVAL = 0.001
#: Housekeeping period: Date header, idle connections, the reserve, the stall check.
TICK = 0.5

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            413: b"Content Too Large", 431: b"Request Header Fields Too Large",
            503: b"Service Unavailable", 505: b"HTTP Version Not Supported"}


def _error_body(message: str) -> bytes:
    return json.dumps({"error": message}, separators=(",", ":")).encode()


class ProbeStats:
    """Requests answered by the probe listener, by path and status (any thread reads)."""

    def __init__(self) -> None:
        self.listener = ListenerStats()
        #: (path, status) -> count; paths the source does not serve count as "other".
        self.requests: dict[tuple[str, int], int] = {}
        #: Times the event loop was seen stalled (probes answered 503 for it).
        self.stalls = 0


class _Connection(asyncio.Protocol):
    """One client connection: requests in, cached answers out."""

    __slots__ = ("_buffer", "_server", "_transport", "last_active", "spoke")

    def __init__(self, server: ProbeServer) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self.last_active = server.now
        self.spoke = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections[transport] = self

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._server.connections.pop(self._transport, None)
            self._server.closed()
        self._transport = None

    def pause_writing(self) -> None:
        # A client that sends requests and never reads the answers: stop reading it.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        server = self._server
        self.last_active = server.now
        if not self.spoke:
            self.spoke = True
            server.spoke(transport)
        start = 0
        while True:
            end = data.find(b"\r\n\r\n", start)
            if end < 0:
                break
            if end - start > MAX_HEAD:
                break  # answered 431 below
            reply, keep = server.answer(data[start:end])
            transport.write(reply)
            if not keep:
                transport.close()
                return
            start = end + 4
        rest = data[start:] if start else data
        if len(rest) > MAX_HEAD:
            transport.write(server.error(431, "request head larger than 8 KiB", keep=False))
            transport.close()
        elif rest:
            self._buffer = rest

    def eof_received(self) -> bool | None:
        return None  # close


class ProbeServer:
    """Serves the probe source's answers on ``sockets`` from a thread of its own.

    ``start`` (from the event loop) begins; ``beat`` must be called from the
    event loop at least every ``stall_limit`` seconds; ``stop`` ends it.
    """

    def __init__(self, source: ProbeSource, sockets: list[socket.socket], *,
                 max_connections: int, stall_limit: float,
                 limited: RateLimitedLog, name: str = "probe listener",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._sockets = sockets
        self._clock = clock
        self.name = name
        self.stall_limit = stall_limit
        self.stats = ProbeStats()
        self.connections: dict[asyncio.Transport, _Connection] = {}
        self.now = clock()
        self._beat = self.now
        self._stalled_since: float | None = None
        self._acceptor = Acceptor(sockets, lambda: _Connection(self), name=name,
                                  max_connections=max_connections, limited=limited,
                                  reserve=RESERVE, stats=self.stats.listener)
        self._date = b""
        self._set_date()
        #: Request heads seen (up to _PARSED_HEADS of them), parsed.
        self._parsed: dict[bytes, _Request] = {}
        self._errors: dict[tuple[int, str, bool, bool], tuple[bytes, bytes]] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._switch_interval = sys.getswitchinterval()
        self._failure: BaseException | None = None

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [sock.getsockname()[:2] for sock in self._sockets]

    # -- the event loop's side ----------------------------------------------------------
    def beat(self) -> None:
        """The event loop is turning (call it from there, periodically)."""
        self._beat = self._clock()

    def start(self) -> None:
        """Run the listener's thread; returns once it accepts."""
        self.beat()
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))
        self._thread = threading.Thread(target=self._run, name="probe-listener", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._failure is not None:
            raise self._failure

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection and end the thread (blocks until then)."""
        loop, stopping, thread = self._loop, self._stopping, self._thread
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop has just ended
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)
        self._thread = None
        sys.setswitchinterval(self._switch_interval)

    # -- the thread ---------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(), or logged if it comes later
            if not self._started.is_set():
                self._failure = exc
            else:
                log.exception("%s failed", self.name)
        finally:
            self._started.set()
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        self._acceptor.start()
        self._started.set()
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TICK):
                        await self._stopping.wait()
                if self._stopping.is_set():
                    break
                self._housekeeping()
        finally:
            self._acceptor.stop_accepting()
            for transport in list(self.connections):
                transport.close()
            self._acceptor.close_all()
            await asyncio.sleep(0)  # let the transports' connection_lost run

    def spoke(self, transport: asyncio.BaseTransport) -> None:
        self._acceptor.spoke(transport)

    def closed(self) -> None:
        """A connection is closing: its descriptor goes back to the reserve first, once the
        transport has let it go (right after this turn of the loop)."""
        if self._loop is not None:
            self._loop.call_soon(self._acceptor.refill)

    def _housekeeping(self) -> None:
        self.now = now = self._clock()
        self._set_date()
        self._acceptor.refill()
        for transport, connection in list(self.connections.items()):
            if now - connection.last_active > IDLE_TIMEOUT:
                transport.close()
        self._acceptor.prune()

    def _set_date(self) -> None:
        self._date = f"Date: {formatdate(usegmt=True)}\r\n".encode()

    # -- answering ------------------------------------------------------------------------
    def answer(self, head: bytes) -> tuple[bytes, bool]:
        """The response to a request head (without its blank line) and whether to keep the
        connection open."""
        request = self._parsed.get(head)
        if request is None:
            request = _parse(head)
            if len(self._parsed) < _PARSED_HEADS:  # clients repeat their heads: parse once
                self._parsed[head] = request
        keep = request.keep
        if request.error is not None:
            status, message = request.error
            return self.error(status, message, keep, head=request.head_only), keep
        answer = self._source.probe_answer(request.path)
        if answer is None:
            self._count("other", 404)
            return self.error(404, "the probe listener serves the probe paths only", keep,
                              head=request.head_only), keep
        stalled = self._check_stall() if self._clock() - self._beat > self.stall_limit \
            or self._stalled_since is not None else False
        rendered = request.rendered
        if rendered is None or rendered[0] is not answer or rendered[1] is not self._date \
                or rendered[2] is not stalled:
            rendered = (answer, self._date, stalled,
                        self._render(answer, keep, request.head_only, stalled))
            request.rendered = rendered
        self._count(request.path, 503 if stalled else answer.status)
        return rendered[3], keep

    def _count(self, path: str, status: int) -> None:
        key = (path, status)
        requests = self.stats.requests
        requests[key] = requests.get(key, 0) + 1

    def _check_stall(self) -> bool:
        silent = self._clock() - self._beat
        if silent <= self.stall_limit:
            if self._stalled_since is not None:
                self._stalled_since = None
                log.warning("%s: the event loop turns again: the probes answer its state",
                            self.name)
            return False
        if self._stalled_since is None:
            self._stalled_since = silent
            self.stats.stalls += 1
            log.error("%s: the event loop has not turned for %.1fs (stall limit %gs): "
                      "the probes answer 503", self.name, silent, self.stall_limit)
        return True

    def _render(self, answer: ProbeAnswer, keep: bool, head: bool, stalled: bool) -> bytes:
        status, body = answer.status, answer.body
        if stalled:
            status, body = 503, self._stalled_body(body)
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown")),
                 b"Content-Type: %s\r\n" % answer.content_type.encode("latin-1"),
                 b"Content-Length: %d\r\n" % len(body), self._date,
                 b"Cache-Control: no-store\r\n"]
        if not keep:
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        if not head:
            lines.append(body)
        return b"".join(lines)

    def _stalled_body(self, body: bytes) -> bytes:
        message = (f"the sidecar's event loop has not turned for more than "
                   f"{self.stall_limit:g}s")
        try:
            document = json.loads(body)
        except ValueError:
            return _error_body(message)
        if not isinstance(document, dict):
            return _error_body(message)
        document["state"] = 2
        document["error"] = message
        return json.dumps(document, separators=(",", ":")).encode()

    def error(self, status: int, message: str, keep: bool, *, head: bool = False) -> bytes:
        key = (status, message, keep, head)
        cached = self._errors.get(key)
        if cached is not None and cached[0] is self._date:
            return cached[1]
        body = _error_body(message)
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown")),
                 b"Content-Type: application/json\r\n",
                 b"Content-Length: %d\r\n" % len(body), self._date]
        if status == 405:
            lines.append(b"Allow: GET, HEAD\r\n")
        if not keep:
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        if not head:
            lines.append(body)
        response = b"".join(lines)
        if key in self._errors or len(self._errors) < 64:
            self._errors[key] = (self._date, response)
        return response


class _Request:
    """A request head as parsed once: the path, or the error to answer with."""

    __slots__ = ("error", "head_only", "keep", "path", "rendered")

    def __init__(self, path: str, keep: bool, head_only: bool = False,
                 error: tuple[int, str] | None = None) -> None:
        self.path = path
        self.keep = keep
        self.head_only = head_only
        self.error = error
        #: (answer, Date line, stalled, response bytes) last sent for it.
        self.rendered: tuple[ProbeAnswer, bytes, bool, bytes] | None = None


def _parse(head: bytes) -> _Request:
    line_end = head.find(b"\r\n")
    line = head if line_end < 0 else head[:line_end]
    parts = line.split(b" ")
    if len(parts) != 3:
        return _Request("", False, error=(400, "malformed request line"))
    method, target, version = parts
    if version == b"HTTP/1.1":
        keep = True
    elif version == b"HTTP/1.0":
        keep = False
    elif version.startswith(b"HTTP/"):
        return _Request("", False, error=(505, "HTTP/1.1 or HTTP/1.0 only"))
    else:
        return _Request("", False, error=(400, "malformed request line"))
    if line_end >= 0:
        fields = head[line_end:].lower()
        if b"\r\ntransfer-encoding:" in fields or (
                b"\r\ncontent-length:" in fields and not _zero_length(fields)):
            return _Request("", False, error=(413, "the probe listener takes no request bodies"))
        if b"\r\nconnection:" in fields:
            keep = _keep_alive(fields, keep)
    head_only = method == b"HEAD"
    if method != b"GET" and not head_only:
        return _Request("", keep, error=(405, "GET or HEAD only"))
    return _Request(target.partition(b"?")[0].decode("latin-1"), keep, head_only)


def _header_value(fields: bytes, name: bytes) -> bytes:
    start = fields.find(b"\r\n" + name + b":")
    if start < 0:
        return b""
    start += len(name) + 3
    end = fields.find(b"\r\n", start)
    return fields[start:end if end >= 0 else len(fields)].strip()


def _zero_length(fields: bytes) -> bool:
    return _header_value(fields, b"content-length") == b"0"


def _keep_alive(fields: bytes, default: bool) -> bool:
    tokens = {t.strip() for t in _header_value(fields, b"connection").split(b",")}
    if b"close" in tokens:
        return False
    if b"keep-alive" in tokens:
        return True
    return default

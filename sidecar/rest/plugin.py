"""The REST plugin: one aiohttp server that every plugin adds its routes to, and the probe
listener beside it.

What any client in the pod network may do is bounded here, so that none can
fail the probes or flood the log: connections are capped below the open-files
limit (:mod:`._accept`), expensive routes answer from a short-lived render and
at most ``render-concurrency`` at once, bodies over ``max-body-size`` get 413
on every route, refused admin requests are counted and logged at most once per
interval, and the probes can have a listener and a thread of their own
(:mod:`.probeserver`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web, web_response
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict

from sidecar._version import __version__
from sidecar.logging.audit import Caller, audit
from sidecar.logging.context import bind_plugin_async

from ._accept import Acceptor, ListenerStats, bind
from ._ratelimit import RateLimitedLog
from .access import AdminAccess, Verdict, peer_of, refuse
from .api import (
    ADMIN_CALLER,
    AUDITED,
    DEADLINE,
    Handler,
    Middleware,
    ProbeSource,
    Response,
    RouteDoc,
    error_response,
)
from .config import HTTPConfig, connection_limit, split_endpoint
from .openapi import RouteInfo, openapi_document
from .probeserver import ProbeServer, ProbeStats

log = logging.getLogger("sidecar.rest")

OPENAPI_PATH = "/openapi.json"
_OPENAPI_DOC = RouteDoc(
    "This API as an OpenAPI 3 document",
    {200: Response.json("the OpenAPI document of every route this sidecar serves",
                        {"type": "object"})},
    description="Built from the routes the enabled plugins registered, so it lists "
                "exactly what this sidecar serves with its configuration.")

#: The Server header of every answer: no Python or aiohttp version for a scanner to match.
SERVER_HEADER = "cninfra-sidecar"
#: Seconds a client told "busy" (503) waits before asking again.
RETRY_AFTER = 1
#: Renders kept per expensive route (URL x negotiated headers).
_CACHE_ENTRIES = 32
#: How often the event loop proves to the probe listener that it turns, and held
#: connections are counted.
_HOUSEKEEPING = 0.5
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class _ClientErrorFilter(logging.Filter):
    """aiohttp logs every request it cannot parse (a header line over 8190 bytes, a bad
    chunk, ...) at ERROR with a traceback: any client could fill the sidecar's log that
    way. Those are the client's mistakes, answered with 400; they become one debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, HttpProcessingError):
            return True
        if log.isEnabledFor(logging.DEBUG):
            log.debug("refused a malformed request from %s: %s %s",
                      record.args[0] if isinstance(record.args, tuple) and record.args else "?",
                      error.code, " ".join(str(error.message).split())[:200])
        return False


_CLIENT_ERRORS = _ClientErrorFilter()


@dataclass
class RestStats:
    """What the REST server refused or shed, for the metrics plugin (plain counters)."""

    #: Refused admin requests by verdict (needs-token, bad-token, malformed).
    admin_refused: dict[str, int] = field(default_factory=dict)
    #: Expensive requests answered 503 (busy), by route.
    busy: dict[str, int] = field(default_factory=dict)
    #: Expensive requests answered from a cached render, by route.
    cached: dict[str, int] = field(default_factory=dict)
    #: Requests with a body over max-body-size (413).
    too_large: int = 0
    listener: ListenerStats = field(default_factory=ListenerStats)
    #: The probe listener's, when it runs.
    probes: ProbeStats | None = None


@dataclass
class _Render:
    expires: float
    status: int
    headers: CIMultiDict[str]
    body: bytes


async def _body_refusal(request: web.Request, limit: int) -> web.Response | None:
    """Read the body now (handlers that never read theirs would otherwise answer 200 to
    any size); the answer when it is over ``limit`` (413) or broken (400), else None."""
    length = request.content_length
    if length is not None and length > limit:
        return _refusal(413, f"request body larger than max-body-size ({limit} bytes)")
    try:
        await request.read()  # chunked: aiohttp counts and stops past client_max_size
    except web.HTTPRequestEntityTooLarge:
        return _refusal(413, f"request body larger than max-body-size ({limit} bytes)")
    except (HttpProcessingError, ConnectionResetError) as exc:
        # A bad chunk, or the client closed before the body's end: its mistake, no trace.
        return _refusal(400, f"request body cut short or malformed: {exc}"[:200])
    return None


def _refusal(status: int, message: str) -> web.Response:
    response = error_response(status, message)
    response.force_close()  # what is left of the body is never read
    return response


class RestPlugin:
    """Listens in ``after_init``, so that every plugin can register routes in ``init``."""

    name = "rest"

    def __init__(self, config: HTTPConfig | None = None) -> None:
        self.config = config or HTTPConfig()
        token = self._read_token()
        self.access = AdminAccess(self.config.admin_allow, token)
        if not self.config.admin_allow and token is None:
            # Legal (admin routes switched off), but more often a token forgotten.
            log.warning("http.conf: admin-allow is empty and neither admin-token nor "
                        "admin-token-file is set: the admin routes refuse every caller")
        self.ssl_context = self._load_tls()
        self.stats = RestStats()
        self._limited = RateLimitedLog(log)
        self._middlewares: list[Middleware] = []
        self._routes: list[tuple[str, str, Handler, str | None]] = []
        self._infos: list[RouteInfo] = []
        self._openapi: bytes | None = None
        self._runner: web.AppRunner | None = None
        self._acceptor: Acceptor | None = None
        self._probe_source: ProbeSource | None = None
        self._probe_server: ProbeServer | None = None
        self._housekeeping: asyncio.TimerHandle | None = None
        #: Transports with a request in a handler now (never closed to make room).
        self._busy: set[asyncio.BaseTransport] = set()
        self._renders: list[dict[tuple[str, ...], _Render]] = []
        self._rendering = 0
        self.bound: list[tuple[str, int]] = []
        self.probe_bound: list[tuple[str, int]] = []
        self.register("GET", OPENAPI_PATH, self._serve_openapi, name="openapi", doc=_OPENAPI_DOC,
                      expensive=True)

    def _read_token(self) -> str | None:
        if self.config.admin_token:
            return self.config.admin_token
        if self.config.admin_token_file:
            path = Path(self.config.admin_token_file)
            try:
                token = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"admin-token-file {path}: {exc.strerror or exc}") from None
            except UnicodeDecodeError:
                raise ValueError(f"admin-token-file {path}: not UTF-8 text") from None
            if not token:
                raise ValueError(f"admin-token-file {path} is empty")
            return token
        return None

    def _load_tls(self) -> ssl.SSLContext | None:
        """The server's TLS context; a missing or unreadable file is a config error naming
        its key and path (checked before anything starts)."""
        cert, key = self.config.server_cert_file, self.config.server_key_file
        if not cert or not key:
            return None
        for name, path in (("server-cert-file", cert), ("server-key-file", key)):
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                raise ValueError(f"{name} {path}: {exc.strerror or exc}") from None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise ValueError(f"server-cert-file {cert} / server-key-file {key}: not a PEM "
                             f"certificate and its private key ({exc.reason or exc})") from None
        return context

    # -- routes --------------------------------------------------------------------------
    def register(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        admin: bool = False,
        name: str | None = None,
        doc: RouteDoc | None = None,
        bounded: bool = True,
        expensive: bool = False,
    ) -> None:
        if self._runner is not None:
            raise RuntimeError(f"route {method} {path} registered after the server started")
        # The handler runs as the plugin that registered it (registered in its init), not
        # as the server: its log lines, and those of the tasks it starts, name that plugin.
        wrapped = bind_plugin_async(handler)
        wrapped = self._guard(wrapped) if admin else wrapped
        if expensive:
            wrapped = self._bounded_render(wrapped, path)
        if bounded:
            wrapped = self._with_timeout(wrapped)
        self._routes.append((method.upper(), path, wrapped, name))
        self._infos.append(RouteInfo(method.upper(), path, name, admin, doc, expensive))
        self._openapi = None

    @property
    def routes(self) -> list[RouteInfo]:
        """Every registered route with its documentation (``doc`` None if it has none)."""
        return list(self._infos)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3 document of the registered routes (served at ``/openapi.json``)."""
        return openapi_document(
            self._infos, title="cninfra-sidecar", version=__version__,
            description="The REST API of a cninfra-sidecar: probes, status and the routes of "
                        "its enabled plugins. Admin routes answer callers in admin-allow or "
                        "with the admin bearer token.",
            request_timeout=self.config.request_timeout or None)

    async def _serve_openapi(self, request: web.Request) -> web.Response:
        if self._openapi is None:  # routes are fixed once the server runs: rendered once
            self._openapi = json.dumps(self.openapi(), separators=(",", ":")).encode()
        return web.Response(body=self._openapi, content_type="application/json")

    def add_middleware(self, middleware: Middleware) -> None:
        if self._runner is not None:
            raise RuntimeError("middleware added after the server started")
        self._middlewares.append(middleware)

    def serve_probes(self, source: ProbeSource) -> None:
        """Answer the probe listener's requests from ``source`` (when probe-endpoint is set)."""
        if self._runner is not None:
            raise RuntimeError("probe source set after the server started")
        self._probe_source = source

    # -- wrappers ------------------------------------------------------------------------
    def _guard(self, handler: Handler) -> Handler:
        access = self.access
        refused = self.stats.admin_refused
        limited = self._limited

        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            verdict = access.check_request(request)
            if verdict is not Verdict.ALLOWED:
                refused[verdict.value] = refused.get(verdict.value, 0) + 1
                # Any client decides how often this happens: one line per 10 s and verdict.
                limited.warning(("refused", verdict), "refused %s %s from %s: %s",
                                request.method, request.path[:200], request.remote,
                                verdict.value)
                return refuse(verdict)
            authorization = request.headers.get("Authorization")
            caller = Caller(peer_of(request), access.token_valid(authorization))
            request[ADMIN_CALLER] = caller
            if request.method in _NO_BODY_METHODS:
                return await handler(request)
            status = 500
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                status = exc.status
                raise
            else:
                status = response.status
                return response
            finally:
                if not request.get(AUDITED):  # the handler logged no audit line of its own
                    path = request.rel_url.raw_path[:200]  # as sent: no decoded newline
                    audit("admin.request", "%s %s answered %d", request.method, path, status,
                          caller=caller, method=request.method, path=path, status=status)

        guarded.__dict__["admin"] = True
        return guarded

    def _with_timeout(self, handler: Handler) -> Handler:
        limit = self.config.request_timeout
        if not limit:
            return handler

        @functools.wraps(handler)
        async def bounded(request: web.Request) -> web.StreamResponse:
            request[DEADLINE] = asyncio.get_running_loop().time() + limit
            try:
                async with asyncio.timeout(limit):
                    return await handler(request)
            except TimeoutError:
                return error_response(503, f"request took longer than {limit:g}s")

        return bounded

    def _bounded_render(self, handler: Handler, route: str) -> Handler:
        """A render cached for ``render-cache`` seconds; at most ``render-concurrency``
        renders of expensive routes at once, the others answered 503 with Retry-After."""
        ttl = self.config.render_cache
        limit = self.config.render_concurrency
        cache: dict[tuple[str, ...], _Render] = {}
        self._renders.append(cache)
        stats = self.stats

        @functools.wraps(handler)
        async def expensive(request: web.Request) -> web.StreamResponse:
            if request.method not in ("GET", "HEAD"):
                return await handler(request)
            headers = request.headers
            key = (request.method, request.path_qs, headers.get("Accept", ""),
                   headers.get("Accept-Encoding", ""))
            now = asyncio.get_running_loop().time()
            hit = cache.get(key)
            if hit is not None and hit.expires > now:
                stats.cached[route] = stats.cached.get(route, 0) + 1
                return web.Response(status=hit.status, headers=hit.headers, body=hit.body)
            if self._rendering >= limit:
                stats.busy[route] = stats.busy.get(route, 0) + 1
                return error_response(
                    503, f"busy: {limit} expensive requests are being answered; "
                         f"retry after {RETRY_AFTER}s",
                    headers={"Retry-After": str(RETRY_AFTER)})
            self._rendering += 1
            try:
                response = await handler(request)
            finally:
                self._rendering -= 1
            if ttl > 0 and isinstance(response, web.Response) and response.status == 200 \
                    and isinstance(response.body, bytes):
                if len(cache) >= _CACHE_ENTRIES:
                    for old in [k for k, v in cache.items() if v.expires <= now] or [
                            next(iter(cache))]:
                        del cache[old]
                kept = CIMultiDict(response.headers)
                for name in ("Content-Length", "Transfer-Encoding", "Date", "Server"):
                    kept.popall(name, None)
                cache[key] = _Render(now + ttl, response.status, kept, response.body)
            return response

        return expensive

    def _first_middleware(self) -> Middleware:
        """Outermost: 413 for bodies over max-body-size on every route, the in-progress
        mark that keeps a connection from being closed to make room, and fresh renders
        after a change."""
        limit = self.config.max_body_size
        busy = self._busy
        renders = self._renders
        stats = self.stats

        async def first(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.body_exists:
                refused = await _body_refusal(request, limit)
                if refused is not None:
                    if refused.status == 413:
                        stats.too_large += 1
                    return refused
            transport = request.transport
            if transport is not None:
                busy.add(transport)
            try:
                return await handler(request)
            finally:
                if transport is not None:
                    busy.discard(transport)
                if request.method not in _NO_BODY_METHODS:
                    for cache in renders:  # a change (a level set, a program restarted)
                        cache.clear()

        return first

    def build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.config.max_body_size,
            middlewares=[web.middleware(m)  # type: ignore[misc]
                         for m in (self._first_middleware(), *self._middlewares)],
            handler_args={"max_field_size": 8190, "max_line_size": 8190},
        )
        for method, path, handler, name in self._routes:
            app.router.add_route(method, path, handler, name=name)
        return app

    # -- lifecycle -----------------------------------------------------------------------
    async def init(self) -> None:
        pass

    async def after_init(self) -> None:
        # aiohttp answers with "Python/3.11 aiohttp/3.x" unless told otherwise, also where
        # no hook of ours runs (a request it cannot parse).
        setattr(web_response, "SERVER_SOFTWARE", SERVER_HEADER)  # noqa: B010
        host, port = split_endpoint(self.config.endpoint)
        sockets = bind(host, port, self.config.endpoint)
        runner = web.AppRunner(
            self.build_app(),
            access_log=None,
            keepalive_timeout=self.config.keepalive_timeout,
            shutdown_timeout=self.config.shutdown_timeout,
            handle_signals=False,
        )
        logging.getLogger("aiohttp.server").addFilter(_CLIENT_ERRORS)
        try:
            await runner.setup()
            assert runner.server is not None
            acceptor = Acceptor(sockets, runner.server, name=f"REST port {self.config.endpoint}",
                                max_connections=connection_limit(self.config),
                                limited=self._limited, ssl=self.ssl_context,
                                busy=self._busy.__contains__, stats=self.stats.listener)
            acceptor.start()
            self._acceptor = acceptor
            self._runner = runner
            self.bound = [sock.getsockname()[:2] for sock in sockets]
            await self._start_probe_server()
        except BaseException:
            if self._acceptor is None:
                for sock in sockets:
                    sock.close()
            self._runner = None
            self.bound = []
            await self._close_server(runner)
            raise
        self._keep_house()
        log.info("REST API listening on %s (at most %d connections)%s",
                 ", ".join(f"{h}:{p}" for h, p in self.bound), acceptor.max_connections,
                 f"; probes also on {', '.join(f'{h}:{p}' for h, p in self.probe_bound)}"
                 if self.probe_bound else "")

    async def _start_probe_server(self) -> None:
        endpoint = self.config.probe_endpoint
        if not endpoint:
            return
        if self._probe_source is None:
            log.warning("probe-endpoint %s is set, but no plugin serves probes: not listening",
                        endpoint)
            return
        host, port = split_endpoint(endpoint)
        sockets = bind(host, port, endpoint)
        server = ProbeServer(self._probe_source, sockets,
                             max_connections=self.config.probe_max_connections,
                             stall_limit=self.config.probe_stall_limit, limited=self._limited,
                             name=f"probe listener {endpoint}")
        self._probe_server = server
        self.stats.probes = server.stats
        await asyncio.to_thread(server.start)
        self.probe_bound = server.addresses

    def _keep_house(self) -> None:
        """Every _HOUSEKEEPING seconds (a timer, not a task: the beat must come from the
        event loop turning, nothing else): tell the probe listener the loop turns, and
        count the held connections."""
        if self._probe_server is not None:
            self._probe_server.beat()
        if self._acceptor is not None:
            self._acceptor.prune()
        self._housekeeping = asyncio.get_running_loop().call_later(_HOUSEKEEPING,
                                                                   self._keep_house)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self.bound[0][1] if self.bound else self.config.port

    @property
    def probe_port(self) -> int | None:
        """The probe listener's port; None without one."""
        return self.probe_bound[0][1] if self.probe_bound else None

    async def close(self) -> None:
        timer, self._housekeeping = self._housekeeping, None
        if timer is not None:
            timer.cancel()
        runner, self._runner = self._runner, None
        if runner is not None:
            await self._close_server(runner)

    async def _close_server(self, runner: web.AppRunner) -> None:
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.stop_accepting()
        probes, self._probe_server = self._probe_server, None
        try:
            await runner.cleanup()
        finally:
            if acceptor is not None:
                acceptor.close_all()
            if probes is not None:  # the last to go: the kubelet asks until the end
                await asyncio.to_thread(probes.stop)
            self.probe_bound = []
            logging.getLogger("aiohttp.server").removeFilter(_CLIENT_ERRORS)

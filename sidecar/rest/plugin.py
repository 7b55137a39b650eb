"""The REST plugin: one aiohttp server that every plugin adds its routes to."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from sidecar._version import __version__

from .access import AdminAccess, refuse
from .api import Handler, Middleware, Response, RouteDoc, error_response
from .config import HTTPConfig
from .openapi import RouteInfo, openapi_document

log = logging.getLogger("sidecar.rest")

OPENAPI_PATH = "/openapi.json"
_OPENAPI_DOC = RouteDoc(
    "This API as an OpenAPI 3 document",
    {200: Response.json("the OpenAPI document of every route this sidecar serves",
                        {"type": "object"})},
    description="Built from the routes the enabled plugins registered, so it lists "
                "exactly what this sidecar serves with its configuration.")


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
        self._middlewares: list[Middleware] = []
        self._routes: list[tuple[str, str, Handler, str | None]] = []
        self._infos: list[RouteInfo] = []
        self._openapi: bytes | None = None
        self._runner: web.AppRunner | None = None
        self.bound: list[tuple[str, int]] = []
        self.register("GET", OPENAPI_PATH, self._serve_openapi, name="openapi", doc=_OPENAPI_DOC)

    def _read_token(self) -> str | None:
        if self.config.admin_token:
            return self.config.admin_token
        if self.config.admin_token_file:
            path = Path(self.config.admin_token_file)
            try:
                token = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"admin-token-file {path}: {exc.strerror or exc}") from None
            if not token:
                raise ValueError(f"admin-token-file {path} is empty")
            return token
        return None

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
    ) -> None:
        if self._runner is not None:
            raise RuntimeError(f"route {method} {path} registered after the server started")
        wrapped = self._guard(handler) if admin else handler
        if bounded:
            wrapped = self._with_timeout(wrapped)
        self._routes.append((method.upper(), path, wrapped, name))
        self._infos.append(RouteInfo(method.upper(), path, name, admin, doc))
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

    def _guard(self, handler: Handler) -> Handler:
        access = self.access

        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            verdict = access.check_request(request)
            if verdict.value != "allowed":
                log.warning("refused %s %s from %s: %s", request.method, request.path,
                            request.remote, verdict.value)
                return refuse(verdict)
            return await handler(request)

        guarded.__dict__["admin"] = True
        return guarded

    def _with_timeout(self, handler: Handler) -> Handler:
        limit = self.config.request_timeout
        if not limit:
            return handler

        @functools.wraps(handler)
        async def bounded(request: web.Request) -> web.StreamResponse:
            try:
                async with asyncio.timeout(limit):
                    return await handler(request)
            except TimeoutError:
                return error_response(503, f"request took longer than {limit:g}s")

        return bounded

    def build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.config.max_body_size,
            middlewares=[web.middleware(m) for m in self._middlewares],  # type: ignore[misc]
            handler_args={"max_field_size": 8190, "max_line_size": 8190},
        )
        for method, path, handler, name in self._routes:
            app.router.add_route(method, path, handler, name=name)
        return app

    async def init(self) -> None:
        pass

    async def after_init(self) -> None:
        ssl_context = None
        if self.config.server_cert_file and self.config.server_key_file:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(self.config.server_cert_file, self.config.server_key_file)
        runner = web.AppRunner(
            self.build_app(),
            access_log=None,
            keepalive_timeout=self.config.keepalive_timeout,
            shutdown_timeout=self.config.shutdown_timeout,
            handle_signals=False,
        )
        logging.getLogger("aiohttp.server").addFilter(_CLIENT_ERRORS)
        await runner.setup()
        site = web.TCPSite(
            runner, self.config.host, self.config.port, ssl_context=ssl_context,
            reuse_address=True,
        )
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            logging.getLogger("aiohttp.server").removeFilter(_CLIENT_ERRORS)
            raise OSError(exc.errno, f"cannot listen on {self.config.endpoint}: "
                                     f"{exc.strerror or exc}") from None
        self._runner = runner
        self.bound = [sock.getsockname()[:2] for sock in site._server.sockets]  # type: ignore[union-attr]
        log.info("REST API listening on %s", ", ".join(f"{h}:{p}" for h, p in self.bound))

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        return self.bound[0][1] if self.bound else self.config.port

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            logging.getLogger("aiohttp.server").removeFilter(_CLIENT_ERRORS)

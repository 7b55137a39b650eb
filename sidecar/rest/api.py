"""What other plugins see of the REST server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from .openapi import RouteDoc

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


class HTTPHandlers(Protocol):
    """Route registration; call it from a plugin's ``init``."""

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
        """Serve ``method path`` with ``handler``; ``admin`` routes need the allow-list or token.

        ``doc`` describes the route in the OpenAPI document (``GET /openapi.json``);
        every route of the sidecar's own plugins has one. ``bounded=False`` spares
        the request-timeout wrapper to handlers that only read memory (the probes).
        """
        ...

    def add_middleware(self, middleware: Middleware) -> None:
        """Wrap every request (for metrics or logging); registered before start."""
        ...

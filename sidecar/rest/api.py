"""What other plugins see of the REST server: route registration and route documentation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from aiohttp import web

from sidecar.logging.audit import Caller

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]

#: The request key under which the request-timeout wrapper puts the loop time by which
#: the handler must have answered (see :func:`time_left`).
DEADLINE: web.RequestKey[float] = web.RequestKey("sidecar.rest.deadline", float)


def time_left(request: web.Request) -> float | None:
    """Seconds this handler has left before request-timeout answers 503 in its place; None
    when it has no limit. A handler that starts work which may take longer (a program's
    stop) lets it run on and answers before that, 202 with where to watch it."""
    deadline: float | None = request.get(DEADLINE)
    if deadline is None:
        return None
    return deadline - asyncio.get_running_loop().time()


#: Who made an admin request: put there by the admin check, before the handler runs.
ADMIN_CALLER: web.RequestKey[Caller] = web.RequestKey("sidecar.rest.admin_caller", Caller)
#: Set once the handler has taken the request's audit line on (see :func:`admin_caller`).
AUDITED: web.RequestKey[bool] = web.RequestKey("sidecar.rest.audited", bool)


def admin_caller(request: web.Request) -> Caller | None:
    """Who made this admin request (address, whether a valid token came), for the audit
    line of what the handler changes (:func:`sidecar.logging.audit.audit`); None on a
    route that is not admin.

    Asking takes the audit on: without it, the REST plugin logs a generic
    ``admin.request`` line for every admin request that may change state."""
    request[AUDITED] = True
    return request.get(ADMIN_CALLER)


Schema = Mapping[str, Any]

#: The body of every JSON error answer of the sidecar's routes.
ERROR_SCHEMA: Schema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string", "description": "what was wrong, in one line"}},
}

def error_response(status: int, message: str, *, headers: Mapping[str, str] | None = None,
                   **extra: object) -> web.Response:
    """The JSON answer :data:`ERROR_SCHEMA` documents: ``{"error": message, **extra}``."""
    return web.json_response({"error": message, **extra}, status=status, headers=headers)


@dataclass(frozen=True)
class Parameter:
    """A path, query or header parameter of a route."""

    name: str
    description: str
    location: Literal["path", "query", "header"] = "path"
    #: Path parameters are always required.
    required: bool = False
    schema: Schema = field(default_factory=lambda: {"type": "string"})

    def to_dict(self, pattern: str | None = None) -> dict[str, Any]:
        schema = dict(self.schema)
        if pattern is not None and "pattern" not in schema:
            schema["pattern"] = f"^(?:{pattern})$"
        data: dict[str, Any] = {
            "name": self.name, "in": self.location, "description": self.description,
            "required": self.required or self.location == "path", "schema": schema,
        }
        return data


@dataclass(frozen=True)
class Response:
    """One documented answer: a description and, for a body, its media type and schema."""

    description: str
    schema: Schema | None = None
    content_type: str = "application/json"

    @classmethod
    def json(cls, description: str, schema: Schema) -> Response:
        return cls(description, schema)

    @classmethod
    def error(cls, description: str) -> Response:
        """A JSON ``{"error": ...}`` answer."""
        return cls(description, ERROR_SCHEMA)

    @classmethod
    def text(cls, description: str, content_type: str = "text/plain") -> Response:
        return cls(description, {"type": "string"}, content_type)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"description": self.description}
        if self.schema is not None:
            data["content"] = {self.content_type: {"schema": dict(self.schema)}}
        return data


@dataclass(frozen=True)
class RouteDoc:
    """What a route does, its parameters and its answers (status -> Response)."""

    summary: str
    responses: Mapping[int, Response]
    description: str = ""
    parameters: tuple[Parameter, ...] = ()
    #: Groups routes in viewers; by default the first path segment.
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.summary.strip():
            raise ValueError("a route doc needs a summary")
        if not self.responses:
            raise ValueError(f"route doc {self.summary!r}: document at least one response")


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
        expensive: bool = False,
    ) -> None:
        """Serve ``method path`` with ``handler``; ``admin`` routes need the allow-list or token.

        ``doc`` describes the route in the OpenAPI document (``GET /openapi.json``);
        every route of the sidecar's own plugins has one. ``bounded=False`` spares
        the request-timeout wrapper to handlers that only read memory (the probes).
        ``expensive`` GET routes (a render of many objects, such as ``/metrics``)
        are answered from a render cached for ``render-cache`` per URL and
        negotiated headers, and at most ``render-concurrency`` of them run at
        once: the others get 503 with Retry-After.
        """
        ...

    def add_middleware(self, middleware: Middleware) -> None:
        """Wrap every request (for metrics or logging); registered before start."""
        ...


@dataclass(frozen=True, slots=True)
class ProbeAnswer:
    """What a probe path answers: its status and JSON body (rendered once per state revision)."""

    status: int
    body: bytes
    content_type: str = "application/json"


class ProbeSource(Protocol):
    """Where the probe listener gets its answers (the probe plugin).

    ``probe_answer`` is called from the probe listener's own thread, for every
    request: it must only read (no awaiting, no locks held by the event loop)
    and return at once, from answers rendered in the event loop.
    """

    def probe_answer(self, path: str) -> ProbeAnswer | None:
        """The answer to ``GET path``; None for a path it does not serve (404)."""
        ...


class ProbeHandlers(HTTPHandlers, Protocol):
    """The REST server as the probe plugin uses it: routes, and the probe listener."""

    def serve_probes(self, source: ProbeSource) -> None:
        """Answer the probe listener's requests (if ``probe-endpoint`` is set) from ``source``."""
        ...

"""``GET /debug/startup-trace`` (admin): how long each plugin's init and after_init took."""

from __future__ import annotations

from aiohttp import web

from sidecar.agent.api import deps_among
from sidecar.rest.api import HTTPHandlers, Response, RouteDoc

from .tracer import Tracer

STARTUP_TRACE_PATH = "/debug/startup-trace"

_ENTRY = {"type": "object", "properties": {
    "index": {"type": "integer"}, "entity": {"type": "string", "description": "plugin.phase"},
    "start": {"type": "number", "description": "Unix time"},
    "duration": {"type": "number", "description": "seconds"}}}
TRACE_DOC = RouteDoc(
    "How long each plugin's init and after_init took",
    {200: Response.json("the start-up trace", {"type": "object", "properties": {
        "name": {"type": "string"},
        "overall": {"type": "number", "description": "seconds from the first start to the "
                                                     "last end"},
        "entries": {"type": "array", "items": _ENTRY},
        "average": {"type": "object", "additionalProperties": {"type": "number"}}}})},
    tags=("debug",))


class StartupTracePlugin:
    """Serves the agent's start-up tracer (the one given to ``Agent(tracer=...)``)."""

    name = "startup-trace"

    def __init__(self, rest: HTTPHandlers, tracer: Tracer) -> None:
        self.deps = deps_among(rest)
        self._rest = rest
        self.tracer = tracer

    async def handle(self, request: web.Request) -> web.Response:
        return web.json_response(self.tracer.get().to_dict())

    async def init(self) -> None:
        self._rest.register("GET", STARTUP_TRACE_PATH, self.handle, admin=True,
                            name="startup-trace", doc=TRACE_DOC)

    async def after_init(self) -> None:
        pass

    async def close(self) -> None:
        pass

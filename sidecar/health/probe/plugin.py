"""``GET /liveness`` and ``GET /readiness``: the agent status as JSON, 200 or 503.

Handlers only read state that the status check keeps fresh; the JSON body is
rendered once per status revision, so a probe costs a dictionary lookup.
"""

from __future__ import annotations

import json

from aiohttp import web

from sidecar.health.statuscheck.api import StatusReader
from sidecar.rest.api import HTTPHandlers

_JSON = "application/json"


class ProbePlugin:
    name = "probe"

    def __init__(self, rest: HTTPHandlers, statuscheck: StatusReader) -> None:
        self.deps = tuple(d for d in (rest, statuscheck) if hasattr(d, "init"))
        self._rest = rest
        self._status = statuscheck
        self._revision = -1
        self._body = b""
        self._live = False
        self._ready = False

    def _refresh(self) -> None:
        revision = self._status.revision
        if revision != self._revision:
            status = self._status.agent_status()
            self._body = json.dumps(status.to_dict(), separators=(",", ":")).encode()
            self._live = status.live
            self._ready = status.ready
            self._revision = revision

    async def liveness(self, request: web.Request) -> web.Response:
        self._refresh()
        return web.Response(body=self._body, status=200 if self._live else 503,
                            content_type=_JSON)

    async def readiness(self, request: web.Request) -> web.Response:
        self._refresh()
        return web.Response(body=self._body, status=200 if self._ready else 503,
                            content_type=_JSON)

    async def init(self) -> None:
        self._rest.register("GET", "/liveness", self.liveness, name="liveness")
        self._rest.register("GET", "/readiness", self.readiness, name="readiness")

    async def after_init(self) -> None:
        pass

    async def close(self) -> None:
        pass

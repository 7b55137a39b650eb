"""``GET /liveness`` and ``GET /readiness``: the agent status as JSON, 200 or 503.

Handlers only read state that the status check keeps fresh; the JSON body is
rendered once per status revision, so a probe costs a dictionary lookup.
"""

from __future__ import annotations

import json

from aiohttp import web

from sidecar.agent.api import deps_among
from sidecar.health.statuscheck.api import StatusReader
from sidecar.health.statuscheck.schema import AGENT_STATUS_SCHEMA
from sidecar.rest.api import HTTPHandlers, Response, RouteDoc

_JSON = "application/json"

LIVENESS_DOC = RouteDoc(
    "Liveness probe: is any fatal plugin in ERROR?",
    {200: Response.json("no fatal plugin is ERROR", AGENT_STATUS_SCHEMA),
     503: Response.json("a fatal plugin is ERROR (the kubelet restarts the container)",
                        AGENT_STATUS_SCHEMA)},
    description="Plugins listed as non-fatal in statuscheck.conf (etcd, kafka, k8s by "
                "default) keep readiness down when they fail, but not liveness.",
    tags=("probes",))
READINESS_DOC = RouteDoc(
    "Readiness probe: is the agent state OK?",
    {200: Response.json("the agent state is OK", AGENT_STATUS_SCHEMA),
     503: Response.json("the agent is starting (INIT) or a plugin is ERROR",
                        AGENT_STATUS_SCHEMA)},
    tags=("probes",))


class ProbePlugin:
    name = "probe"

    def __init__(self, rest: HTTPHandlers, statuscheck: StatusReader) -> None:
        self.deps = deps_among(rest, statuscheck)
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
        self._rest.register("GET", "/liveness", self.liveness, name="liveness", doc=LIVENESS_DOC,
                            bounded=False)
        # Probes only read memory: no request-timeout wrapper on the hottest routes.
        self._rest.register("GET", "/readiness", self.readiness, name="readiness",
                            doc=READINESS_DOC, bounded=False)

    async def after_init(self) -> None:
        pass

    async def close(self) -> None:
        pass

"""``GET /liveness`` and ``GET /readiness``: the agent status as JSON, 200 or 503.

The answers (status and JSON body) are rendered in the event loop once per
status revision: at once on every change of a state, and within
``REFRESH`` seconds of a refresh of ``last_update``. The REST port's
handlers and the probe listener (its own port and thread, see
:mod:`sidecar.rest.probeserver`) both serve them through one method,
:meth:`ProbePlugin.probe_answer`: a probe costs a dictionary lookup.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

from aiohttp import web

from sidecar.agent.api import deps_among
from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.health.statuscheck.api import StatusReader
from sidecar.health.statuscheck.schema import AGENT_STATUS_SCHEMA
from sidecar.rest.api import HTTPHandlers, ProbeAnswer, Response, RouteDoc

LIVENESS = "/liveness"
READINESS = "/readiness"
#: Seconds between checks for a new revision that no change announced (``last_update``).
REFRESH = 0.5

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
        #: Path -> answer; replaced whole, so that another thread always reads one revision.
        self._answers: dict[str, ProbeAnswer] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._refresh_queued = False
        self._refresher: asyncio.Task[None] | None = None

    def _refresh(self) -> None:
        """Render the answers of the current revision (in the event loop only)."""
        self._refresh_queued = False
        revision = self._status.revision
        if revision == self._revision:
            return
        status = self._status.agent_status()
        body = json.dumps(status.to_dict(), separators=(",", ":")).encode()
        self._answers = {LIVENESS: ProbeAnswer(200 if status.live else 503, body),
                         READINESS: ProbeAnswer(200 if status.ready else 503, body)}
        self._revision = revision

    def probe_answer(self, path: str) -> ProbeAnswer | None:
        """The answer to ``GET path`` (the probe paths), from any thread; None for others.

        In the event loop the answer is brought up to date first; elsewhere (the probe
        listener's thread) the rendered one is served and a refresh is asked for if a
        revision came since.
        """
        if threading.get_ident() == self._loop_thread:
            self._refresh()
        elif self._status.revision != self._revision and not self._refresh_queued:
            loop = self._loop
            if loop is not None:
                self._refresh_queued = True
                with contextlib.suppress(RuntimeError):  # the loop has closed: nothing new
                    loop.call_soon_threadsafe(self._refresh)
        return self._answers.get(path)

    def _respond(self, path: str) -> web.Response:
        answer = self.probe_answer(path)
        assert answer is not None
        return web.Response(body=answer.body, status=answer.status,
                            content_type=answer.content_type)

    async def liveness(self, request: web.Request) -> web.Response:
        return self._respond(LIVENESS)

    async def readiness(self, request: web.Request) -> web.Response:
        return self._respond(READINESS)

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH)
            self._refresh()

    async def init(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._refresh()
        self._status.add_listener(self._refresh)
        self._rest.register("GET", LIVENESS, self.liveness, name="liveness", doc=LIVENESS_DOC,
                            bounded=False)
        # Probes only read memory: no request-timeout wrapper on the hottest routes.
        self._rest.register("GET", READINESS, self.readiness, name="readiness",
                            doc=READINESS_DOC, bounded=False)
        serve_probes = getattr(self._rest, "serve_probes", None)
        if serve_probes is not None:  # a REST server with a probe listener
            serve_probes(self)

    async def after_init(self) -> None:
        if self._refresher is None:
            self._refresher = spawn(self._keep_fresh(), "probe-refresh")

    async def close(self) -> None:
        task, self._refresher = self._refresher, None
        await cancel_and_wait(task)

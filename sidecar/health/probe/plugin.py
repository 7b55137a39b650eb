"""``GET /liveness``, ``GET /readiness`` and ``GET /health/<group>``: a health group's
answer, 200 or 503, with the agent status JSON and the group's own state.

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
from sidecar.health.statuscheck.api import LIVENESS as LIVENESS_GROUP
from sidecar.health.statuscheck.api import READINESS as READINESS_GROUP
from sidecar.health.statuscheck.api import StatusReader
from sidecar.health.statuscheck.schema import PROBE_SCHEMA
from sidecar.rest.api import (
    HTTPHandlers,
    Parameter,
    ProbeAnswer,
    Response,
    RouteDoc,
    error_response,
)

LIVENESS = "/liveness"
READINESS = "/readiness"
#: The path family of every group (``/health/liveness`` answers as ``/liveness``); the
#: probe listener serves it too.
HEALTH_PREFIX = "/health/"
#: Seconds between checks for a new revision that no change announced (``last_update``).
REFRESH = 0.5

LIVENESS_DOC = RouteDoc(
    "Liveness probe: is a plugin of the liveness group in ERROR?",
    {200: Response.json("no plugin the liveness group counts is ERROR", PROBE_SCHEMA),
     503: Response.json("a plugin the liveness group counts is ERROR (the kubelet restarts "
                        "the container)", PROBE_SCHEMA)},
    description="The liveness group counts user plugins, fatal programs, the process manager "
                "and the supervisor by default; statuscheck.conf's liveness (and non-fatal) "
                "change it. `state` is the agent state (all plugins); `group` says what "
                "this answer counted and left out.",
    tags=("probes",))
READINESS_DOC = RouteDoc(
    "Readiness probe: is the readiness group OK?",
    {200: Response.json("every plugin the readiness group counts is OK", PROBE_SCHEMA),
     503: Response.json("the agent is starting, or a plugin the readiness group counts is "
                        "INIT or ERROR", PROBE_SCHEMA)},
    description="The readiness group counts every plugin but those that only report to a "
                "shared server (etcd, kafka, k8s, fleet) by default: their outage must not "
                "take every pod out of service. statuscheck.conf's readiness changes it.",
    tags=("probes",))


def group_doc(groups: list[str]) -> RouteDoc:
    return RouteDoc(
        "One health group's answer",
        {200: Response.json("the group is OK (liveness: not ERROR)", PROBE_SCHEMA),
         503: Response.json("the group is not OK", PROBE_SCHEMA),
         404: Response.error("no such group")},
        description="liveness and readiness answer as /liveness and /readiness; the "
                    "groups statuscheck.conf adds under groups answer here only.",
        parameters=(Parameter("group", "a health group", schema={"type": "string",
                                                                 "enum": groups}),),
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
        answers: dict[str, ProbeAnswer] = {}
        for name, group in status.groups.items():
            body = json.dumps(status.probe_body(name), separators=(",", ":")).encode()
            answers[HEALTH_PREFIX + name] = ProbeAnswer(200 if group.up else 503, body)
        answers[LIVENESS] = answers[HEALTH_PREFIX + LIVENESS_GROUP]
        answers[READINESS] = answers[HEALTH_PREFIX + READINESS_GROUP]
        self._answers = answers
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
        if answer is None:
            groups = sorted(p.removeprefix(HEALTH_PREFIX) for p in self._answers
                            if p.startswith(HEALTH_PREFIX))
            return error_response(404, f"no health group {path.removeprefix(HEALTH_PREFIX)!r};"
                                       f" the groups are: {', '.join(groups)}")
        return web.Response(body=answer.body, status=answer.status,
                            content_type=answer.content_type)

    async def liveness(self, request: web.Request) -> web.Response:
        return self._respond(LIVENESS)

    async def readiness(self, request: web.Request) -> web.Response:
        return self._respond(READINESS)

    async def group(self, request: web.Request) -> web.Response:
        return self._respond(HEALTH_PREFIX + request.match_info["group"])

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
        groups = list(self._status.agent_status().groups)
        self._rest.register("GET", HEALTH_PREFIX + "{group}", self.group, name="health-group",
                            doc=group_doc(groups), bounded=False)
        serve_probes = getattr(self._rest, "serve_probes", None)
        if serve_probes is not None:  # a REST server with a probe listener
            serve_probes(self)

    async def after_init(self) -> None:
        if self._refresher is None:
            self._refresher = spawn(self._keep_fresh(), "probe-refresh")

    async def close(self) -> None:
        task, self._refresher = self._refresher, None
        await cancel_and_wait(task)

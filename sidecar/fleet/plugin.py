"""The fleet view: a CacheHelper over every agent's status key, served over REST.

Agents publish ``/vnf-agent/<label>/check/status/v1/agent`` (see the status
check); this plugin keeps all of them in a NamedMapping indexed by state, so
``GET /fleet?state=ERROR`` is an index look-up, not a scan of etcd.

It watches the whole prefix (etcd cannot watch a pattern), so every status
change of every agent reaches it: enable it on the few sidecars that serve
the view, not on every pod.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sidecar.agent.api import deps_among
from sidecar.health.statuscheck.api import PluginState, StatusWriter
from sidecar.health.statuscheck.publisher import AGENT_KEY
from sidecar.health.statuscheck.schema import AGENT_STATUS_SCHEMA
from sidecar.idxmap import CacheHelper, NamedMapping, NamedMappingReader, NameFunction
from sidecar.rest.api import HTTPHandlers, Parameter, Response, RouteDoc, error_response

from .config import FleetConfig

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import Collector

log = logging.getLogger("sidecar.fleet")

AgentStatusDoc = dict[str, Any]

_VALID_STATES = "INIT, OK, ERROR (or 0, 1, 2)"
_STATE_NUMBERS = frozenset(int(s) for s in PluginState)


_AGENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["label", "state", "state_name"],
    "properties": {
        "label": {"type": "string", "description": "the agent's microservice label"},
        "state_name": {"type": "string", "enum": ["INIT", "OK", "ERROR"]},
        **{key: value for key, value in AGENT_STATUS_SCHEMA["properties"].items()
           if key != "plugins"},
    },
}
_NOT_SYNCED = Response.error("the fleet view has not read etcd yet (the reason is given)")
LIST_DOC = RouteDoc(
    "Every agent publishing its status to the same etcd",
    {200: Response.json("the agents, sorted by label", {
        "type": "object",
        "required": ["synced", "revision", "count", "states", "agents"],
        "properties": {
            "synced": {"type": "boolean", "description": "false while catching up after an "
                                                         "etcd outage"},
            "revision": {"type": "integer", "description": "etcd revision the view reflects"},
            "count": {"type": "integer"},
            "states": {"type": "object", "additionalProperties": {"type": "integer"},
                       "description": "agents per state, INIT/OK/ERROR"},
            "agents": {"type": "array", "items": _AGENT_SCHEMA}}}),
     400: Response.error("a state is not one of INIT, OK, ERROR (or 0, 1, 2)"),
     503: _NOT_SYNCED},
    parameters=(Parameter("state", "only agents in this state (INIT, OK, ERROR or 0-2; "
                                   "comma-separated or repeated)", location="query"),),
    tags=("fleet",))
GET_DOC = RouteDoc(
    "One agent's status",
    {200: Response.json("the agent's status document", _AGENT_SCHEMA),
     404: Response.error("no agent with this label publishes a status"),
     503: _NOT_SYNCED},
    parameters=(Parameter("label", "the agent's microservice label"),),
    tags=("fleet",))


def decode_agent_status(data: bytes) -> AgentStatusDoc:
    """An agent status document; raises ValueError (TypeError) for anything else."""
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise TypeError(f"expected a JSON object, got {type(doc).__name__}")
    state = doc.get("state")
    if type(state) is not int or state not in _STATE_NUMBERS:
        raise ValueError(f"state {state!r} is not one of 0, 1, 2")
    return doc


def by_state(doc: AgentStatusDoc) -> dict[str, str]:
    return {"state": PluginState(doc["state"]).name}


def parse_state(text: str) -> PluginState:
    """``ERROR``, ``error`` or ``2`` -> PluginState.ERROR; ValueError naming the valid ones."""
    value = text.strip()
    if value.isdigit() and int(value) in _STATE_NUMBERS:
        return PluginState(int(value))
    try:
        return PluginState[value.upper()]
    except KeyError:
        raise ValueError(f"state {text!r} is not valid; use one of {_VALID_STATES}") from None


def agent_key_label(prefix: str) -> NameFunction:
    """Key -> label for ``<prefix><label>/check/status/v1/agent``; None for any other key."""
    suffix = "/" + AGENT_KEY
    start = len(prefix)

    def label_of(key: str) -> str | None:
        if not key.endswith(suffix):
            return None
        label = key[start:-len(suffix)]
        return label if label and "/" not in label else None

    return label_of


class FleetPlugin:
    """Caches the fleet's agent statuses and serves ``/fleet``."""

    name = "fleet"

    def __init__(self, config: FleetConfig, etcd: Any, rest: HTTPHandlers,
                 statuscheck: StatusWriter | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self._rest = rest
        self._registry = registry
        self._collector: Collector | None = None
        self._mapping: NamedMapping[AgentStatusDoc] = NamedMapping("fleet", by_state)
        self.cache = CacheHelper(
            self._mapping, etcd, config.prefix, name=self.name, decode=decode_agent_status,
            name_of=agent_key_label(config.prefix), statuscheck=statuscheck)
        self.deps = deps_among(etcd, rest, statuscheck)

    @property
    def agents(self) -> NamedMappingReader[AgentStatusDoc]:
        """Label -> agent status document, indexed by ``state`` (INIT/OK/ERROR)."""
        return self._mapping

    # -- handlers ------------------------------------------------------------
    async def list_agents(self, request: web.Request) -> web.Response:
        try:
            wanted = [parse_state(part) for value in request.query.getall("state", [])
                      for part in value.split(",")]
        except ValueError as exc:
            return error_response(400, str(exc))
        if self.cache.revision is None:
            return self._not_synced()
        mapping = self._mapping
        if wanted:
            labels: set[str] = set()
            for state in wanted:
                labels.update(mapping.list_names("state", state.name))
            names = sorted(labels)
        else:
            names = sorted(mapping.list_all_names())
        return web.json_response({
            "synced": self.cache.synced,
            "revision": self.cache.revision,
            "count": len(names),
            "states": {s.name: len(mapping.list_names("state", s.name)) for s in PluginState},
            "agents": [self._entry(name) for name in names],
        })

    async def get_agent(self, request: web.Request) -> web.Response:
        label = request.match_info["label"]
        if self.cache.revision is None:
            return self._not_synced()
        if label not in self._mapping:
            return error_response(404, f"no agent {label!r} in the fleet view")
        return web.json_response(self._entry(label))

    def _entry(self, label: str) -> dict[str, Any]:
        doc = self._mapping.get_value(label) or {}
        return {"label": label, **doc, "state_name": PluginState(doc["state"]).name}

    def _not_synced(self) -> web.Response:
        reason = self.cache.last_error or "still reading etcd"
        return error_response(503, f"the fleet view has not read etcd yet: {reason}")

    # -- lifecycle -----------------------------------------------------------
    async def init(self) -> None:
        self._rest.register("GET", "/fleet", self.list_agents, name="fleet", doc=LIST_DOC)
        self._rest.register("GET", "/fleet/{label}", self.get_agent, name="fleet-agent",
                            doc=GET_DOC)
        await self.cache.init()
        if self._registry is not None and self._collector is None:
            from .metrics import FleetCollector

            self._collector = FleetCollector(self._mapping, self.cache)
            self._registry.register(self._collector)

    async def after_init(self) -> None:
        await self.cache.after_init()
        log.info("fleet view: following %s*/%s", self.config.prefix, AGENT_KEY)

    async def close(self) -> None:
        await self.cache.close()
        await self._mapping.close()
        collector, self._collector = self._collector, None
        if collector is not None and self._registry is not None:
            self._registry.unregister(collector)


"""The fleet view's REST answers and state index, whatever the statuses come from.

The etcd fleet view (:class:`~sidecar.fleet.FleetPlugin`: a CacheHelper of every
agent's status key) and the operator's (the sidecars' Pod annotations, followed
through the Kubernetes API) keep a NamedMapping of status documents indexed by
state and answer ``/fleet`` and ``?state=`` here, the same way.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web

from sidecar.health.statuscheck.api import PluginState
from sidecar.health.statuscheck.schema import AGENT_STATUS_SCHEMA
from sidecar.idxmap import NamedMappingReader
from sidecar.rest.api import Parameter, Response, RouteDoc, error_response

AgentStatusDoc = dict[str, Any]

_VALID_STATES = "INIT, OK, ERROR (or 0, 1, 2)"
_STATE_NUMBERS = frozenset(int(s) for s in PluginState)


class FleetSource(Protocol):
    """What keeps the mapping: whether it follows its store, and how it went so far."""

    @property
    def synced(self) -> bool:
        """It follows the store now (false while cut off: the view shows the last known)."""
        ...

    @property
    def revision(self) -> int | None:
        """The store's revision the mapping reflects; None before the first full read."""
        ...

    #: Why it does not follow the store now, if it does not.
    last_error: str | None
    #: Full reads, resumed watches, watches whose history was gone, events applied, and
    #: statuses left out because they could not be decoded.
    resyncs: int
    resumes: int
    compactions: int
    events: int
    decode_errors: int


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


def decode_agent_status(data: bytes | str) -> AgentStatusDoc:
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


class FleetView:
    """``/fleet`` answers from ``agents`` (a mapping indexed by ``state``) kept by ``source``;
    ``store`` names where the statuses come from, in errors."""

    def __init__(self, agents: NamedMappingReader[AgentStatusDoc], source: FleetSource,
                 store: str = "etcd") -> None:
        self.agents = agents
        self.source = source
        self._store = store

    async def list_agents(self, request: web.Request) -> web.Response:
        try:
            wanted = [parse_state(part) for value in request.query.getall("state", [])
                      for part in value.split(",")]
        except ValueError as exc:
            return error_response(400, str(exc))
        if self.source.revision is None:
            return self._not_synced()
        mapping = self.agents
        if wanted:
            labels: set[str] = set()
            for state in wanted:
                labels.update(mapping.list_names("state", state.name))
            names = sorted(labels)
        else:
            names = sorted(mapping.list_all_names())
        return web.json_response({
            "synced": self.source.synced,
            "revision": self.source.revision,
            "count": len(names),
            "states": {s.name: len(mapping.list_names("state", s.name)) for s in PluginState},
            "agents": [self.entry(name) for name in names],
        })

    async def get_agent(self, label: str) -> web.Response:
        if self.source.revision is None:
            return self._not_synced()
        if label not in self.agents:
            return error_response(404, f"no agent {label!r} in the fleet view")
        return web.json_response(self.entry(label))

    def entry(self, label: str) -> dict[str, Any]:
        doc = self.agents.get_value(label) or {}
        return {"label": label, **doc, "state_name": PluginState(doc["state"]).name}

    def _not_synced(self) -> web.Response:
        reason = self.source.last_error or f"still reading {self._store}"
        return error_response(503, f"the fleet view has not read {self._store} yet: {reason}")

"""JSON schemas of the status documents (the probes' bodies and the etcd values).

They describe :meth:`AgentStatus.to_dict` and :meth:`PluginStatus.to_dict`; the
OpenAPI document of the REST routes uses them.
"""

from __future__ import annotations

from typing import Any

_STATE: dict[str, Any] = {"type": "integer", "enum": [0, 1, 2],
                          "description": "0 INIT, 1 OK, 2 ERROR"}
_SECONDS: dict[str, Any] = {"type": "integer", "description": "Unix seconds"}

PLUGIN_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["state", "last_change", "last_update"],
    "properties": {
        "state": _STATE,
        "last_change": _SECONDS,
        "last_update": _SECONDS,
        "error": {"type": "string", "description": "why the plugin is not OK"},
    },
}

AGENT_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["build_version", "build_date", "commit_hash", "state", "start_time",
                 "last_change", "last_update"],
    "properties": {
        "build_version": {"type": "string"},
        "build_date": {"type": "string"},
        "commit_hash": {"type": "string"},
        "state": {**_STATE, "description": "the logical AND of the plugins: 0 INIT, 1 OK, "
                                           "2 ERROR"},
        "start_time": _SECONDS,
        "last_change": _SECONDS,
        "last_update": _SECONDS,
        "plugins": {"type": "object", "additionalProperties": PLUGIN_STATUS_SCHEMA,
                    "description": "plugin name -> its status"},
    },
}

_NAMES: dict[str, Any] = {"type": "array", "items": {"type": "string"}}

GROUP_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "state", "counted", "left_out"],
    "properties": {
        "name": {"type": "string", "description": "liveness, readiness or an extra group"},
        "state": {**_STATE, "description": "the logical AND of the plugins it counts"},
        "counted": {**_NAMES, "description": "the plugins whose state this answer counts"},
        "left_out": {**_NAMES, "description": "the plugins it does not count"},
        "in_grace": {"type": "object", "additionalProperties": _SECONDS,
                     "description": "counted plugins in ERROR within their grace (they count "
                                    "as their state before) -> when their ERROR counts"},
    },
}

#: A probe's body: the agent status (the seed's fields) and the group that answered.
PROBE_SCHEMA: dict[str, Any] = {
    **AGENT_STATUS_SCHEMA,
    "required": [*AGENT_STATUS_SCHEMA["required"], "group"],
    "properties": {**AGENT_STATUS_SCHEMA["properties"], "group": GROUP_STATUS_SCHEMA},
}

__all__ = ["AGENT_STATUS_SCHEMA", "GROUP_STATUS_SCHEMA", "PLUGIN_STATUS_SCHEMA", "PROBE_SCHEMA"]

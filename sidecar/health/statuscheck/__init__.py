"""statuscheck: plugin states aggregated into the agent's, published to etcd and HTTP."""

from .api import (
    DEFAULT_GROUPS,
    LIVENESS,
    PROBE_GROUPS,
    READINESS,
    AgentStatus,
    ChangeListener,
    GroupStatus,
    PluginState,
    PluginStatus,
    Probe,
    ProbeObserver,
    StatusReader,
    StatusReadWriter,
    StatusWriter,
)
from .config import GroupConfig, StatusCheckConfig
from .groups import aggregate, check_names
from .plugin import StatusCheck, StatusCheckPlugin
from .publisher import AGENT_KEY, PLUGIN_KEY_PREFIX, StatusPublisher, status_documents

__all__ = [
    "AGENT_KEY",
    "DEFAULT_GROUPS",
    "LIVENESS",
    "PLUGIN_KEY_PREFIX",
    "PROBE_GROUPS",
    "READINESS",
    "AgentStatus",
    "ChangeListener",
    "GroupConfig",
    "GroupStatus",
    "PluginState",
    "PluginStatus",
    "Probe",
    "ProbeObserver",
    "StatusCheck",
    "StatusCheckConfig",
    "StatusCheckPlugin",
    "StatusPublisher",
    "StatusReadWriter",
    "StatusReader",
    "StatusWriter",
    "aggregate",
    "check_names",
    "status_documents",
]

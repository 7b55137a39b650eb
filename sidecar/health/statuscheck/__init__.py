"""statuscheck: plugin states aggregated into the agent's, published to etcd and HTTP."""

from .api import (
    AgentStatus,
    ChangeListener,
    PluginState,
    PluginStatus,
    Probe,
    ProbeObserver,
    StatusReader,
    StatusReadWriter,
    StatusWriter,
)
from .config import DEFAULT_NON_FATAL, StatusCheckConfig
from .plugin import StatusCheck, StatusCheckPlugin, aggregate
from .publisher import AGENT_KEY, PLUGIN_KEY_PREFIX, StatusPublisher, status_documents

__all__ = [
    "AGENT_KEY",
    "DEFAULT_NON_FATAL",
    "PLUGIN_KEY_PREFIX",
    "AgentStatus",
    "ChangeListener",
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
    "status_documents",
]

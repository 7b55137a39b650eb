"""Agent: plugin lifecycle, ordering, timeouts and signals."""

from .agent import DEFAULT_START_TIMEOUT, DEFAULT_STOP_TIMEOUT, Agent, PhaseTiming, order_plugins
from .api import Plugin, deps_among, plugin_deps
from .errors import AgentError, AgentStartError, AgentStopError, reason

__all__ = [
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "Agent",
    "AgentError",
    "AgentStartError",
    "AgentStopError",
    "PhaseTiming",
    "Plugin",
    "deps_among",
    "order_plugins",
    "plugin_deps",
    "reason",
]

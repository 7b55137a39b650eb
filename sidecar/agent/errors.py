"""Agent errors.

    AgentError
    ├── AgentStartError   a plugin's init or after_init failed or timed out
    └── AgentStopError    one or more plugins failed to close
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of the agent's lifecycle errors."""


class AgentStartError(AgentError):
    def __init__(self, plugin: str, phase: str, reason: str) -> None:
        self.plugin = plugin
        self.phase = phase
        self.reason = reason
        super().__init__(f"plugin {plugin!r} failed in {phase}: {reason}")


class AgentStopError(AgentError):
    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = failures
        detail = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
        super().__init__(f"{len(failures)} plugin(s) failed to close: {detail}")

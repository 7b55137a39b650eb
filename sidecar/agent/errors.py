"""Agent errors.

    AgentError
    ├── AgentStartError   a plugin's init or after_init failed or timed out
    └── AgentStopError    one or more plugins failed to close
"""

from __future__ import annotations

__all__ = ["AgentError", "AgentStartError", "AgentStopError", "reason"]


def reason(exc: BaseException, *, with_type: bool = False) -> str:
    """Why ``exc`` happened, in one line, for a status, a log line or an error message:
    the first line of its text (a plain OSError's strerror and file name), else the name of
    its type; a timeout says so. ``with_type`` names the type too when the text does not
    (terse client errors: ``KafkaConnectionError: Unable to bootstrap``)."""
    if isinstance(exc, TimeoutError):
        return "no answer (timed out)"
    text = str(exc).strip()
    if isinstance(exc, OSError) and exc.strerror and text.startswith("[Errno"):
        return exc.strerror + (f": {exc.filename}" if exc.filename else "")
    name = type(exc).__name__
    if not text:
        return name
    first = text.splitlines()[0]
    return f"{name}: {first}" if with_type and name not in first else first


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

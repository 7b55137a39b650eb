"""Which plugin is running: the agent sets it around each lifecycle step.

Tasks copy the context they were created in, so a plugin's background tasks
(started in its ``after_init``) keep its name, and log lines carry it.
"""

from __future__ import annotations

from contextvars import ContextVar

#: The name of the plugin whose code (or background task) is running, if any.
current_plugin: ContextVar[str | None] = ContextVar("sidecar_current_plugin", default=None)

__all__ = ["current_plugin"]

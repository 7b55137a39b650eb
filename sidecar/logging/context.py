"""Which plugin is running: the agent sets it around each lifecycle step.

Tasks copy the context they were created in, so a plugin's background tasks
(started in its ``after_init``) keep its name, and log lines carry it. Code of
one plugin that another calls later (a REST handler the rest plugin's server
runs, a listener a process's watcher calls) would carry the caller's name:
such entry points are bound with :func:`bind_plugin` / :func:`bind_plugin_async`
to the plugin that registered them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from functools import wraps
from typing import ParamSpec, TypeVar

#: The name of the plugin whose code (or background task) is running, if any.
current_plugin: ContextVar[str | None] = ContextVar("sidecar_current_plugin", default=None)

P = ParamSpec("P")
R = TypeVar("R")


def bind_plugin(function: Callable[P, R]) -> Callable[P, R]:
    """``function``, run as the plugin running now (the registrant), whoever calls it.

    Outside any plugin it is returned as it is: it then runs as its caller.
    """
    owner = current_plugin.get()
    if owner is None:
        return function

    @wraps(function)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        token = current_plugin.set(owner)
        try:
            return function(*args, **kwargs)
        finally:
            current_plugin.reset(token)

    return bound


def bind_plugin_async(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """:func:`bind_plugin` for a coroutine function: the name is set while it runs, so
    the tasks and callbacks it creates keep it too."""
    owner = current_plugin.get()
    if owner is None:
        return function

    @wraps(function)
    async def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        token = current_plugin.set(owner)
        try:
            return await function(*args, **kwargs)
        finally:
            current_plugin.reset(token)

    return bound


__all__ = ["bind_plugin", "bind_plugin_async", "current_plugin"]

"""The plugin contract every part of the sidecar, and every user plugin, follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Plugin(Protocol):
    """A unit of the agent with a three-step lifecycle.

    ``init`` runs for every plugin in dependency order, then ``after_init`` for
    every plugin in the same order, and at shutdown ``close`` in reverse order.
    Routes, status probes and watches are registered in ``init``; servers start
    listening and background loops start in ``after_init``.

    Subclass it to get no-op defaults, or implement the methods on any class.
    Dependencies are passed to the constructor and listed in ``deps`` so that
    the agent orders them first.
    """

    name: str

    async def init(self) -> None:
        """Prepare resources; raise to abort the agent's start-up."""

    async def after_init(self) -> None:
        """Start serving, once every plugin has been initialised."""

    async def close(self) -> None:
        """Release everything ``init`` and ``after_init`` acquired. Must be idempotent."""


def plugin_deps(plugin: Plugin) -> Sequence[Plugin]:
    """The plugins ``plugin`` needs started before it (its optional ``deps`` attribute)."""
    deps = getattr(plugin, "deps", ())
    return tuple(deps) if deps else ()

"""The plugin contract every part of the sidecar, and every user plugin, follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast, runtime_checkable


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


def deps_among(*dependencies: object) -> tuple[Plugin, ...]:
    """What a constructor puts in ``self.deps``: those of its ``dependencies`` that are
    plugins (they have an ``init``), which the agent then starts first. The others (None,
    a library object such as a ProcessManager, a test's stand-in) are used as they are."""
    return tuple(cast(Plugin, d) for d in dependencies if d is not None and hasattr(d, "init"))


def plugin_deps(plugin: Plugin) -> Sequence[Plugin]:
    """The plugins ``plugin`` needs started before it (its optional ``deps`` attribute)."""
    deps = getattr(plugin, "deps", ())
    return tuple(deps) if deps else ()

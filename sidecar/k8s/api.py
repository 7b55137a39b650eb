"""The k8s plugin's contract: what it needs of the supervisor, which it never imports.

The supervisor (``sidecar.exec.supervisor``) satisfies these Protocols; the
builder hands it to :class:`~sidecar.k8s.K8sPlugin`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Protocol


class ReloadOutcome(Protocol):
    """What a reload did (the supervisor's ReloadResult)."""

    @property
    def started(self) -> Collection[str]: ...

    @property
    def stopped(self) -> Collection[str]: ...

    @property
    def restarted(self) -> Collection[str]: ...


class ProgramSupervisor(Protocol):
    """The part of the supervisor that the ConfigMap watch drives."""

    def reload_text(self, text: str, source: str) -> Awaitable[ReloadOutcome]:
        """Apply a new ``supervisor.conf``; raise ConfigError, changing nothing, if it is bad."""
        ...



class ProgramEventLike(Protocol):
    """The supervisor's ProgramEvent, as far as Events need it."""

    @property
    def program(self) -> str: ...

    @property
    def state(self) -> str: ...

    @property
    def error(self) -> str | None: ...

    @property
    def restarts(self) -> int: ...

    @property
    def crashed(self) -> bool: ...

    @property
    def exit_code(self) -> int | None: ...


#: Called with each program event.
ProgramEventListener = Callable[[ProgramEventLike], None]


class SupervisorLike(ProgramSupervisor, Protocol):
    """The supervisor as the plugin uses it: reloads, and its program events."""

    def add_listener(self, listener: ProgramEventListener) -> None: ...

    def remove_listener(self, listener: ProgramEventListener) -> None: ...

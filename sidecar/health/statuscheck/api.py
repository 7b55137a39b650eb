"""The status check contract: states, status records, and the read and write sides."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol


class PluginState(IntEnum):
    """As in cn-infra; the numbers are part of the JSON contract."""

    INIT = 0
    OK = 1
    ERROR = 2


@dataclass(frozen=True, slots=True)
class PluginStatus:
    state: PluginState
    last_change: int
    last_update: int
    error: str | None = None
    fatal: bool = True

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "state": int(self.state),
            "last_change": self.last_change,
            "last_update": self.last_update,
        }
        if self.error:
            data["error"] = self.error
        return data


@dataclass(frozen=True, slots=True)
class AgentStatus:
    build_version: str
    build_date: str
    commit_hash: str
    state: PluginState
    start_time: int
    last_change: int
    last_update: int
    plugins: Mapping[str, PluginStatus] = field(default_factory=dict)

    def to_dict(self, *, with_plugins: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "build_version": self.build_version,
            "build_date": self.build_date,
            "commit_hash": self.commit_hash,
            "state": int(self.state),
            "start_time": self.start_time,
            "last_change": self.last_change,
            "last_update": self.last_update,
        }
        if with_plugins:
            data["plugins"] = {name: s.to_dict() for name, s in sorted(self.plugins.items())}
        return data

    @property
    def live(self) -> bool:
        """No fatal plugin is in ERROR (non-fatal ones keep only readiness down)."""
        return not any(s.state is PluginState.ERROR and s.fatal for s in self.plugins.values())

    @property
    def ready(self) -> bool:
        return self.state is PluginState.OK


#: A pull probe: return None or PluginState.OK when healthy, PluginState (or
#: ``(state, error)``) otherwise, or raise: the exception's text becomes the error.
Probe = Callable[[], Awaitable[object]]

#: Called (synchronously, so keep it cheap) after every change of a state or error.
ChangeListener = Callable[[], None]

#: Called after every pull probe with the name, the seconds it took and the state it gave.
ProbeObserver = Callable[[str, float, PluginState], None]


class StatusWriter(Protocol):
    """What a plugin uses to report its health (cn-infra's PluginStatusWriter)."""

    def register(self, name: str, probe: Probe | None = None, *, fatal: bool | None = None) -> None:
        """Start tracking ``name`` in INIT; with ``probe`` it is polled, else it reports."""
        ...

    def report_state_change(self, name: str, state: PluginState, error: str | None = None) -> None:
        """Push a new state; published only if it differs from the last one."""
        ...

    def unregister(self, name: str) -> None:
        """Forget ``name`` (a removed program, a closed plugin); its published key goes too."""
        ...


class StatusReader(Protocol):
    """What the probes, publishers, metrics and the Kubernetes plugin read."""

    def agent_status(self) -> AgentStatus: ...

    def add_listener(self, listener: ChangeListener) -> None:
        """Call ``listener`` after every change of a state or error (and of ``last_update``)."""
        ...

    def remove_listener(self, listener: ChangeListener) -> None:
        """Stop calling ``listener``; a no-op if it was not added."""
        ...

    def add_probe_observer(self, observer: ProbeObserver) -> None:
        """Call ``observer(name, seconds, state)`` after every pull probe call (for metrics)."""
        ...

    @property
    def revision(self) -> int:
        """Grows with every update, including ``last_update`` refreshes."""
        ...


class StatusReadWriter(StatusWriter, StatusReader, Protocol):
    """Both sides, for a plugin that reports its own state and mirrors the agent's (k8s)."""

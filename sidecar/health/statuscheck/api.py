"""The status check contract: states, status records, health groups, and the read and
write sides.

A *health group* (as Spring Boot Actuator's) is a named set of plugins whose AND answers
one probe: ``liveness`` answers ``/liveness``, ``readiness`` answers ``/readiness`` and
the Pod's ``cninfra.io/ready`` condition, and every extra group of ``statuscheck.conf``
answers ``/health/<name>``. The agent state stays the AND of *all* plugins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol

#: The group that answers ``/liveness``: 200 unless a plugin it counts is ERROR.
LIVENESS = "liveness"
#: The group that answers ``/readiness`` and the Pod condition: 200 only when it is OK.
READINESS = "readiness"
#: The groups every status check has.
PROBE_GROUPS = (LIVENESS, READINESS)
#: Where a plugin counts unless it says otherwise (a user plugin: both probes).
DEFAULT_GROUPS = frozenset(PROBE_GROUPS)


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
    #: The health groups it counts for (its defaults, as statuscheck.conf changed them).
    groups: frozenset[str] = DEFAULT_GROUPS

    @property
    def fatal(self) -> bool:
        """It counts for liveness: its ERROR makes the kubelet restart the container."""
        return LIVENESS in self.groups

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
class GroupStatus:
    """One health group: the AND of the plugins it counts, and the answer of its probe."""

    name: str
    state: PluginState
    #: Its probe answers 200 (else 503): liveness unless ERROR, other groups only when OK.
    up: bool
    counted: tuple[str, ...] = ()
    left_out: tuple[str, ...] = ()
    #: Counted plugins in ERROR whose grace has not run out (they count as the state they
    #: had before): name -> the Unix second from which their ERROR counts.
    in_grace: Mapping[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "state": int(self.state),
                                "counted": list(self.counted), "left_out": list(self.left_out)}
        if self.in_grace:
            data["in_grace"] = dict(sorted(self.in_grace.items()))
        return data


def group_up(group: str, state: PluginState) -> bool:
    """The probe answer of a group in ``state``: liveness fails only on ERROR (a starting
    container is alive), every other group passes only when OK."""
    if group == LIVENESS:
        return state is not PluginState.ERROR
    return state is PluginState.OK


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
    #: Group name -> its status: liveness, readiness, then the extra groups.
    groups: Mapping[str, GroupStatus] = field(default_factory=dict)

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

    def probe_body(self, group: str) -> dict[str, Any]:
        """What ``group``'s probe answers: the seed's status JSON plus ``"group"``."""
        return {**self.to_dict(), "group": self.groups[group].to_dict()}

    @property
    def live(self) -> bool:
        """``/liveness`` answers 200: no plugin that counts for liveness is ERROR."""
        group = self.groups.get(LIVENESS)
        return group.up if group is not None else self.state is not PluginState.ERROR

    @property
    def ready(self) -> bool:
        """``/readiness`` answers 200 (and the Pod condition is True): that group is OK."""
        group = self.groups.get(READINESS)
        return group.up if group is not None else self.state is PluginState.OK


#: A pull probe: return None or PluginState.OK when healthy, PluginState (or
#: ``(state, error)``) otherwise, or raise: the exception's text becomes the error.
Probe = Callable[[], Awaitable[object]]

#: Called (synchronously, so keep it cheap) after every change of a state or error.
ChangeListener = Callable[[], None]

#: Called after every pull probe with the name, the seconds it took and the state it gave.
ProbeObserver = Callable[[str, float, PluginState], None]


class StatusWriter(Protocol):
    """What a plugin uses to report its health (cn-infra's PluginStatusWriter)."""

    def register(self, name: str, probe: Probe | None = None, *, fatal: bool | None = None,
                 groups: Collection[str] | None = None, grace: float = 0.0) -> None:
        """Start tracking ``name`` in INIT; with ``probe`` it is polled, else it reports.

        ``groups`` are the health groups it counts for by default (liveness and
        readiness when None; ``()`` for a plugin that only reports to a shared
        server); ``fatal`` adds (True) or removes (False) liveness. ``grace`` is how
        long its ERROR lasts before it counts for a group. statuscheck.conf has the
        last word on both.
        """
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

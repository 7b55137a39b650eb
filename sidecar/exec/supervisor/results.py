"""What a reload did, and what the supervisor needs of the agent's stop timeout."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Protocol

#: Added to the largest program stop-timeout to get the agent's stop budget: the hooks'
#: kill grace and the plugins that close after the supervisor.
STOP_MARGIN = 2.0


class StopBudget(Protocol):
    """Something with a stop timeout to keep large enough (the :class:`sidecar.Agent`)."""

    stop_timeout: float


@dataclass(frozen=True)
class ReloadResult:
    """What applying a config did, by program name."""

    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: Changed only in how they are reported (``fatal``, ``health-check``): kept running.
    updated: list[str] = field(default_factory=list)
    #: Among started and restarted: could not be started (see their status).
    failed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.started or self.stopped or self.restarted or self.updated)

    def to_dict(self) -> dict[str, list[str]]:
        return asdict(self)

    def __str__(self) -> str:
        parts = [f"{key} {', '.join(names)}" for key, names in self.to_dict().items()
                 if names and key != "unchanged"]
        return "; ".join(parts) or "no change"


@dataclass
class ReloadStats:
    """Configs applied and rejected after start-up, and the last of each."""

    applied: int = 0
    rejected: int = 0
    last_applied: float | None = None
    last_source: str | None = None
    last_error: str | None = None
    last_error_time: float | None = None

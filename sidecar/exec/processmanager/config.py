"""``process-manager.conf``: where templates live and how processes are watched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from sidecar.config import DURATION

from .reaper import DEFAULT_REAP_INTERVAL
from .watcher import DEFAULT_STATUS_INTERVAL, MIN_STATUS_INTERVAL


@dataclass(frozen=True)
class ProcessManagerConfig:
    #: Directory of template files (``*.json``, ``*.yaml``); created when missing.
    #: Empty: no templates.
    template_path: str = ""
    #: How often every process's state is read (exits are noticed at once regardless).
    status_interval: Annotated[float, DURATION] = DEFAULT_STATUS_INTERVAL
    #: Reap zombies nobody waits for: ``auto`` when the sidecar is PID 1 or a subreaper.
    reap_zombies: Literal["auto", "always", "never"] = "auto"
    #: How often zombies are looked for (a child's exit is also noticed at once).
    reap_interval: Annotated[float, DURATION] = DEFAULT_REAP_INTERVAL
    #: Become a child subreaper, so that orphaned descendants of the processes
    #: (a daemon's double fork) become the sidecar's to reap and to signal.
    subreaper: bool = False
    #: Report each template process started at init to the status check as
    #: ``process:<name>`` (readiness only: a crash loop fails readiness, not liveness).
    health_check: bool = True

    def __post_init__(self) -> None:
        if self.status_interval < MIN_STATUS_INTERVAL:
            raise ValueError(f"status-interval must be at least {MIN_STATUS_INTERVAL * 1000:g}ms")
        if self.reap_interval <= 0:
            raise ValueError("reap-interval must be positive")

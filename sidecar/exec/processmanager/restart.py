"""The restart policy of one process: how many automatic restarts are left, and when."""

from __future__ import annotations

from .options import Backoff


class RestartPolicy:
    """Counts restarts and fast exits; says how long to wait before the next start."""

    def __init__(self, limit: int, backoff: Backoff) -> None:
        #: 0 never, N at most N (since the last manual start), -1 always.
        self.limit = limit
        self.backoff = backoff
        #: Automatic restarts since the process was created (the metric).
        self.count = 0
        #: Automatic restarts since the last manual start (the budget).
        self.used = 0
        #: Exits in a row that came sooner than ``backoff.reset_after`` after a start.
        self.streak = 0
        #: The last exit was on its own, not a success, and no restart follows.
        self.gave_up = False

    def reset(self) -> None:
        """A manual start or restart: a fresh budget and no failure streak."""
        self.used = 0
        self.streak = 0

    @property
    def exhausted(self) -> bool:
        return 0 < self.limit <= self.used

    def after_exit(self, ran: float, returncode: int | None, restartable: bool) -> float | None:
        """After an exit nobody asked for: seconds until the restart, or None for none."""
        if not restartable or self.limit == 0:
            self.gave_up = returncode != 0
            return None
        if self.exhausted:
            self.gave_up = True
            return None
        self.streak = self.streak + 1 if ran < self.backoff.reset_after else 1
        self.used += 1
        return self.backoff.delay(self.streak)

    def crash_looping(self, alive: bool, uptime: float) -> bool:
        """More than one fast exit in a row, and no healthy run since."""
        if self.streak < 2:
            return False
        return not alive or uptime < self.backoff.reset_after

"""Each program's status check, ``program:<name>``: pushed on its events, kept current."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sidecar.health.statuscheck.api import StatusWriter

from .programs import Program


class ProgramHealth:
    """Reports programs to the status check; ``current(program)`` says it is still supervised."""

    def __init__(self, statuscheck: StatusWriter | None,
                 current: Callable[[Program], bool]) -> None:
        self._statuscheck = statuscheck
        self._current = current
        self._checks: set[str] = set()

    def register(self, program: Program) -> None:
        """Track it (INIT until its first report), unless ``health-check: false``."""
        if self._statuscheck is None or not program.config.health_check:
            return
        self._statuscheck.register(program.check, fatal=program.config.fatal)
        self._checks.add(program.check)

    def unregister(self, program: Program) -> None:
        if program.check not in self._checks:
            return
        self._checks.discard(program.check)
        if self._statuscheck is not None:
            self._statuscheck.unregister(program.check)

    def soon(self, program: Program) -> None:
        """Report it once the current event is through.

        The restart policy decides "gave up" after the terminated event has gone
        out, so the report waits for the loop's next turn (or :meth:`flush`).
        """
        if not program.health_due:
            program.health_due = True
            asyncio.get_running_loop().call_soon(self.update, program)

    def update(self, program: Program) -> None:
        if not program.health_due:
            return  # flushed already
        program.health_due = False
        if self._statuscheck is None or program.check not in self._checks \
                or not self._current(program):
            return
        state, error = program.health()
        self._statuscheck.report_state_change(program.check, state, error)

    def flush(self, programs: list[Program]) -> None:
        """Report now what is due, so that the status is current when a call returns."""
        for program in programs:
            self.update(program)

    def arm_recovery(self, program: Program) -> None:
        """A crash-looping program that then runs for ``backoff-reset-after`` is healthy
        again: no event says so, a timer does."""
        program.cancel_timer()
        delay = program.config.backoff_reset_after + 0.05
        program.health_timer = asyncio.get_running_loop().call_later(delay, self.soon, program)

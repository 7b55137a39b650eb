"""One supervised program: its config, its process, and how it is doing."""

from __future__ import annotations

import asyncio
from typing import Any

from sidecar.exec.processmanager import Process, process_health
from sidecar.health.statuscheck.api import PluginState

from .api import BACKOFF, FAILED, GAVE_UP
from .config import ProgramConfig

#: Status check name of a program: ``program:<name>``.
CHECK_PREFIX = "program:"

STOPPING = "stopping"
#: Not running because it was stopped (or never started: ``autostart: false``).
STOPPED = "stopped"
#: Exited on its own, successfully, and is not restarted.
EXITED = "exited"


class Program:
    """The supervisor's record of a program (the process belongs to the process manager)."""

    def __init__(self, config: ProgramConfig) -> None:
        self.config = config
        self.process: Process | None = None
        #: Stopped over REST/CLI (or being removed): not running is what was asked for.
        self.stop_requested = False
        #: Why the last start failed (the executable is missing, ...); None after a start.
        self.start_error: str | None = None
        #: The state of the last event.
        self.last_event = "initial"
        self.health_timer: asyncio.TimerHandle | None = None
        self.health_due = False
        #: The start, stop or restart asked for last, while one is not finished yet.
        self.pending: str | None = None
        #: Operations asked for and not finished (they run one after the other).
        self.operations = 0

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def check(self) -> str:
        return f"{CHECK_PREFIX}{self.name}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def state(self) -> str:
        """The state shown in listings: the process state while it runs, else why it does not."""
        process = self.process
        if process is not None and process.is_alive():
            return STOPPING if self.stop_requested else process.state.value
        if self.start_error is not None:
            return FAILED
        if process is None or process.never_started or self.stop_requested \
                or process.stop_requested:
            return STOPPED
        if self.last_event == BACKOFF:
            return BACKOFF
        if process.gave_up:
            return GAVE_UP
        return EXITED

    def health(self) -> tuple[PluginState, str | None]:
        if self.start_error is not None:
            return PluginState.ERROR, f"cannot start: {self.start_error}"
        process = self.process
        if process is None or process.never_started:
            return PluginState.OK, None
        alive = process.is_alive()
        if self.stop_requested and not alive:
            return PluginState.OK, None
        if not alive and process.stop_requested and not self.operations:
            # It should run (nobody stopped the program), its process was stopped, and no
            # start or restart is on its way: never healthy, whatever the exit code says.
            return PluginState.ERROR, ("not running: its process was stopped and not "
                                       "started again")
        return process_health(process)

    def row(self) -> dict[str, Any]:
        """What ``GET /supervisor/programs`` shows of it."""
        process = self.process
        state, error = self.health()
        running = self.running
        return {
            "name": self.name,
            "state": self.state(),
            "running": running,
            "pid": process.pid if process is not None and running else None,
            "restarts": process.restarts if process is not None else 0,
            "uptime": round(process.uptime, 3) if process is not None else 0.0,
            "start_time": process.start_time if process is not None else None,
            "exit_code": process.last_returncode if process is not None else None,
            "healthy": state is PluginState.OK,
            "error": error,
            "command": self.config.executable_path,
            "args": list(self.config.executable_args),
            "logfile": self.config.logfile_path or None,
            "autostart": self.config.autostart,
            "pending": self.pending,
        }

    def cancel_timer(self) -> None:
        timer, self.health_timer = self.health_timer, None
        if timer is not None:
            timer.cancel()

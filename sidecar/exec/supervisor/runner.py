"""The supervised programs: their processes, their events (to listeners and hooks), their checks.

:class:`~.plugin.Supervisor` decides which programs there are (the config,
its reloads) and serialises changes under its lock; the runner does what is
decided to one program at a time, and turns what its process does into
program events (:class:`~.events.ProgramEvent`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from sidecar.exec.processmanager import (
    EventKind,
    Process,
    ProcessEvent,
    ProcessManager,
    ProcessOptions,
    ProcessStartError,
)
from sidecar.health.statuscheck.api import StatusWriter

from .api import FAILED, PROCESS_STATUS, ProgramEvent, ProgramListener
from .config import ProgramConfig
from .errors import ProgramNotFoundError, ProgramStartError
from .health import ProgramHealth
from .hooks import HookRunner
from .programs import Program

log = logging.getLogger("sidecar.supervisor")


class ProgramRunner:
    """Starts, stops and forgets programs in ``manager``; publishes their events."""

    def __init__(self, manager: ProcessManager, hooks: HookRunner,
                 statuscheck: StatusWriter | None) -> None:
        self._manager = manager
        self._hooks = hooks
        #: By name, in the applied config's order.
        self.programs: dict[str, Program] = {}
        self._health = ProgramHealth(statuscheck, self._supervised)
        self._listeners: list[ProgramListener] = []

    def get(self, name: str) -> Program:
        """The program called ``name``; ProgramNotFoundError if there is none."""
        program = self.programs.get(name)
        if program is None or program.process is None:
            raise ProgramNotFoundError(name, sorted(self.programs))
        return program

    # -- listeners -----------------------------------------------------------------------
    def add_listener(self, listener: ProgramListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: ProgramListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- the programs of a config ----------------------------------------------------------
    async def add(self, config: ProgramConfig, options: ProcessOptions) -> str | None:
        """Create its process and start it (unless ``autostart: false``); why it cannot start."""
        process = await self._manager.new_process(config.name, config.executable_path, options)
        program = Program(config)
        program.process = process
        process.add_listener(self._listener(program, process))
        self.programs[config.name] = program
        self._health.register(program)
        if not config.autostart:
            self._health.soon(program)
            return None
        return await self.start(program)

    async def remove(self, program: Program) -> None:
        """Stop it and delete its process (stop signal, SIGKILL after its stop-timeout)."""
        if self.programs.get(program.name) is program:
            del self.programs[program.name]
        program.stop_requested = True
        program.cancel_timer()
        try:
            if self._manager.get_process(program.name) is program.process:
                await self._manager.delete(program.name, stop=True)
        finally:
            self._health.unregister(program)

    def update(self, program: Program, config: ProgramConfig) -> None:
        """A change in how it is reported only (``fatal``, ``health-check``): it keeps running."""
        before = program.config
        program.config = config
        if before.health_check and not config.health_check:
            self._health.unregister(program)
        else:
            self._health.register(program)
            self._health.soon(program)

    def reorder(self, names: Iterable[str]) -> None:
        """List the programs in ``names``' order (the file's, also for programs kept running)."""
        self.programs = {name: self.programs[name] for name in names}

    def clear(self) -> None:
        """Forget every program; what still runs is the process manager's to stop."""
        for program in list(self.programs.values()):
            program.cancel_timer()
            self._health.unregister(program)
        self.programs.clear()

    # -- control -----------------------------------------------------------------------
    async def start(self, program: Program) -> str | None:
        """Start its process; None, or why it cannot be started (also published as FAILED)."""
        process = program.process
        assert process is not None
        program.stop_requested = False
        try:
            await process.start()
        except ProcessStartError as exc:
            self._start_failed(program, exc.reason)
            return exc.reason
        return None

    async def stop(self, program: Program) -> bool:
        """Stop it and wait; whether it was running."""
        assert program.process is not None
        program.stop_requested = True
        running = program.running
        await program.process.stop_and_wait()
        self._health.soon(program)
        self.flush()
        return running

    async def restart(self, program: Program) -> None:
        """Stop it if it runs, then start it. ProgramStartError if it cannot be started."""
        assert program.process is not None
        program.stop_requested = False
        program.start_error = None
        try:
            await program.process.restart()
        except ProcessStartError as exc:
            self._start_failed(program, exc.reason)
            raise ProgramStartError(program.name, exc.reason) from None
        finally:
            self.flush()

    def flush(self) -> None:
        """Report every status check that is due now, so a call returns with them current."""
        self._health.flush(list(self.programs.values()))

    def update_health(self, program: Program) -> None:
        """Report ``program``'s status check now (an operation on it has ended)."""
        self._health.soon(program)
        self._health.update(program)

    def _start_failed(self, program: Program, reason: str) -> None:
        process = program.process
        log.error("program %s: cannot start %s: %s", program.name,
                  program.config.executable_path, reason)
        program.start_error = reason
        event = ProgramEvent(program=program.name, state=FAILED, event_type=PROCESS_STATUS,
                             pid=None, restarts=process.restarts if process else 0,
                             crashed=False, exit_code=None, time=time.time(),
                             previous=program.last_event, error=reason)
        program.last_event = FAILED
        self._publish(event)
        self._health.soon(program)

    # -- events and health -----------------------------------------------------------------
    def _listener(self, program: Program, process: Process) -> Callable[[ProcessEvent], None]:
        def on_event(event: ProcessEvent) -> None:
            if program.process is process:
                self._on_event(program, event)
        return on_event

    def _on_event(self, program: Program, event: ProcessEvent) -> None:
        program_event = ProgramEvent.from_process_event(program.name, event)
        program.last_event = program_event.state
        if event.kind is EventKind.STARTED:
            program.start_error = None
            self._health.arm_recovery(program)
        self._publish(program_event)
        self._health.soon(program)

    def _publish(self, event: ProgramEvent) -> None:
        log.debug("program %s: %s (pid %s)", event.program, event.state, event.pid)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("program event listener %r failed on %s", listener, event)
        self._hooks.submit(event)

    def _supervised(self, program: Program) -> bool:
        return self.programs.get(program.name) is program

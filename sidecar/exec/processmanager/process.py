"""One managed process: start, stop, restart, signal, wait, and what its status is.

Exit is an event: the process's pidfd becomes readable the moment it exits
(for children and for attached processes alike), and the restart, when one
is due, is started from that very callback. The periodic watcher only reads
``/proc/<pid>/stat`` to notice state changes such as running -> sleeping.
The kernel's side of each run (pidfd, stat file, signals, reaping) is a
:class:`~.run.ProcessRun`; this module decides when to start, stop and restart, and
sends the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from ._spawn import PipeReader
from .errors import ProcessNotRunningError, ProcessStartError
from .events import DEFAULT_BUFFER, EventKind, Fanout, ProcessEvent, Subscription
from .options import ProcessOptions
from .restart import RestartPolicy
from .run import ProcessRun
from .status import ProcessState, ProcessStatus, describe_exit, read_status

log = logging.getLogger("sidecar.exec.processmanager")


class ProcessOwner(Protocol):
    """What a process needs from its manager."""

    @property
    def closing(self) -> bool: ...

    def process_event(self, event: ProcessEvent) -> None: ...

    def watch(self, process: Process) -> None: ...

    def unwatch(self, process: Process) -> None: ...


class Process:
    """A process known to a :class:`ProcessManager`; create it through the manager.

    Times are Unix seconds (``start_time``) and seconds (``uptime``). Exit codes
    follow ``subprocess``: negative for a signal, None when unknown.
    """

    def __init__(self, owner: ProcessOwner, name: str, command: str,
                 options: ProcessOptions) -> None:
        self._owner = owner
        self._loop = asyncio.get_running_loop()
        self._name = name
        self._command = command
        self._options = options
        #: The current (or last) run; None before the first start.
        self._run: ProcessRun | None = None
        self._state = ProcessState.INITIAL
        self._status = ProcessStatus(state=ProcessState.INITIAL)
        self._returncode: int | None = None
        self._last_returncode: int | None = None
        self._policy = RestartPolicy(options.restarts, options.backoff)
        self._stop_requested = False
        self._released = False
        self._restart_timer: asyncio.TimerHandle | None = None
        # Readers outlive their run while a grandchild still holds the pipe.
        self._readers: list[PipeReader] = []
        self._lock = asyncio.Lock()
        self._fanout = Fanout()
        self.notification_queue: asyncio.Queue[ProcessEvent] | None = None
        notify = options.notify
        if notify is True:
            self.notification_queue = asyncio.Queue(maxsize=DEFAULT_BUFFER)
        elif isinstance(notify, asyncio.Queue):
            self.notification_queue = notify
        elif callable(notify):
            self._fanout.add_listener(notify)
        elif notify not in (None, False):
            raise TypeError(f"notify must be an asyncio.Queue, a callable or True, got {notify!r}")
        if self.notification_queue is not None:
            self._fanout.add_queue(self.notification_queue)

    def __repr__(self) -> str:
        return f"<Process {self._name!r} pid={self.pid} {self._state.value}>"

    # -- what it is ----------------------------------------------------------
    @property
    def name(self) -> str:
        """The name it is managed under (``get_process``, events, templates)."""
        return self._name

    @property
    def status_name(self) -> str:
        """The name in its status file (the kernel's 15-character command name)."""
        return self._status.name

    @property
    def command(self) -> str:
        return self._command

    @property
    def arguments(self) -> tuple[str, ...]:
        return self._options.args

    @property
    def options(self) -> ProcessOptions:
        return self._options

    @property
    def attached(self) -> bool:
        """Attached to a process started elsewhere (until it is restarted from ``command``)."""
        return self._run is not None and self._run.popen is None

    @property
    def pid(self) -> int | None:
        return self._run.pid if self._run is not None else None

    @property
    def state(self) -> ProcessState:
        return self._state

    @property
    def status(self) -> ProcessStatus:
        """The status as last read; :meth:`update_status` reads it now."""
        return self._status

    @property
    def returncode(self) -> int | None:
        """How the last run ended; None while running or when unknown."""
        return self._returncode

    @property
    def last_returncode(self) -> int | None:
        """How the most recent run that has ended ended (kept while the next one runs)."""
        return self._last_returncode

    @property
    def restarts(self) -> int:
        """Automatic restarts since the process was created."""
        return self._policy.count

    @property
    def start_time(self) -> float | None:
        """Unix time of the last start; None before the first."""
        return self._run.start_time if self._run is not None else None

    @property
    def uptime(self) -> float:
        """Seconds since the last start while it runs, else 0."""
        run = self._run
        return time.monotonic() - run.start_mono if run is not None and run.alive else 0.0

    @property
    def failure_streak(self) -> int:
        """Exits in a row that came sooner than the backoff's ``reset_after``."""
        return self._policy.streak

    @property
    def crash_looping(self) -> bool:
        """It exited on its own more than once in a row soon after starting, and has not
        run healthily since."""
        return self._policy.crash_looping(self.is_alive(), self.uptime)

    @property
    def gave_up(self) -> bool:
        """It exited on its own, with a failure or after its last restart, and stays down."""
        return self._policy.gave_up

    @property
    def never_started(self) -> bool:
        return self._run is None

    @property
    def stop_requested(self) -> bool:
        """Its current (or last) run was asked to stop (stop, kill, or the stop half of a
        restart): an exit now is expected, and no automatic restart follows."""
        return self._stop_requested

    def is_alive(self) -> bool:
        """True from start until exit (a zombie has exited)."""
        return self._run is not None and self._run.alive

    # -- notifications -------------------------------------------------------
    def notifications(self, maxsize: int = DEFAULT_BUFFER) -> Subscription:
        """A new async iterator of this process's events; see :class:`Subscription`."""
        return self._fanout.subscribe(maxsize)

    def add_listener(self, listener: Callable[[ProcessEvent], None]) -> None:
        self._fanout.add_listener(listener)

    def remove_listener(self, listener: Callable[[ProcessEvent], None]) -> None:
        self._fanout.remove_listener(listener)

    # -- control -------------------------------------------------------------
    async def start(self) -> None:
        """Start the command; does nothing while it runs. Raises ProcessStartError.

        A process that is stopping (stop was called, it has not exited yet) is
        waited for and then started again.
        """
        async with self._lock:
            self._check_usable("start")
            run = self._run
            if run is not None and run.alive:
                if not self._stop_requested:
                    return
                await asyncio.shield(run.exit)
            self._cancel_restart()
            self._policy.reset()
            self._spawn()

    async def restart(self, kill_after: float | None = None) -> None:
        """Stop (SIGKILL after ``kill_after`` s, default the stop timeout), then start again."""
        async with self._lock:
            self._check_usable("restart")
            if not self._command:
                raise ProcessStartError(self._name, "", "attached without a command: "
                                        "it cannot be restarted")
            await self.stop_and_wait(kill_after)
            self._policy.reset()
            self._spawn()

    def stop(self) -> bool:
        """Send the stop signal (SIGTERM) and cancel automatic restarts; False if not running.

        A started process gets the signal with its whole process group.
        """
        self._stop_requested = True
        self._cancel_restart()
        run = self._run
        if run is None or not run.alive:
            return False
        run.send(self._options.stop_signal, group=True)
        return True

    async def stop_and_wait(self, kill_after: float | None = None) -> int | None:
        """Stop and wait; SIGKILL the group after ``kill_after`` s (default: the stop timeout)."""
        limit = self._options.stop_timeout if kill_after is None else kill_after
        deadline = time.monotonic() + limit
        run = self._run
        if not self.stop() or run is None:
            return self._returncode
        try:
            async with asyncio.timeout(limit):
                await asyncio.shield(run.exit)
        except TimeoutError:
            log.warning("process %s (pid %s) did not stop within %gs of %s: sending SIGKILL",
                        self._name, run.pid, limit, self._options.stop_signal.name)
            run.send(signal.SIGKILL, group=True)
            await asyncio.shield(run.exit)
        except asyncio.CancelledError:
            run.send(signal.SIGKILL, group=True)  # whoever cancelled us cannot wait: no orphans
            raise
        await run.finish_group(deadline)
        return self._returncode

    async def kill(self) -> int | None:
        """SIGKILL (the whole group), wait for the exit, and release its pipes."""
        self._stop_requested = True
        self._cancel_restart()
        run = self._run
        if run is not None and run.alive:
            run.send(signal.SIGKILL, group=True)
            await asyncio.shield(run.exit)
        elif run is not None:
            run.kill_group()
        self._close_readers()
        return self._returncode

    async def wait(self) -> int | None:
        """Wait for the current run to end; its exit code (None if unknown or released)."""
        if self._run is None:
            return self._returncode
        return await asyncio.shield(self._run.exit)

    def signal(self, signum: int, *, group: bool = False) -> None:
        """Send ``signum`` to the process (or its process group)."""
        run = self._run
        if run is None or not run.alive:
            raise ProcessNotRunningError(self._name, f"send signal {signum}")
        run.send(signal.Signals(signum), group=group)

    def update_status(self) -> ProcessStatus:
        """Read the status file now; a changed state is notified."""
        run = self._run
        if run is None or run.stat is None:
            return self._status
        try:
            status = read_status(run.pid)
        except ProcessLookupError:
            self.poll()
            return self._status
        except OSError:
            self._observe(ProcessState.UNAVAILABLE)
            return self._status
        if run.alive and run.popen is not None and not status.state.is_alive:
            return self._status  # our child has exited: the exit callback is on its way
        self._status = status
        self._observe(status.state)
        return self._status

    # -- start ---------------------------------------------------------------
    def _check_usable(self, action: str) -> None:
        if self._released:
            raise ProcessNotRunningError(self._name, f"{action}: it was deleted")

    def _spawn(self) -> None:
        if not self._command:
            raise ProcessStartError(self._name, "", "attached without a command: "
                                    "it cannot be (re)started")
        run, readers = ProcessRun.spawn(self._loop, self._name, self._command, self._options,
                                        self._exited)
        self._replace_run(run)
        self._returncode = None
        self._stop_requested = False
        self._policy.gave_up = False
        self._readers = [r for r in self._readers if r.open] + readers
        previous = self._state
        first = self._first_state(run.pid)
        # Every run reads started -> running -> what the kernel says next, whatever the
        # status file said at this instant (often R as exec runs, sometimes S already):
        # a hook on "running" or "sleeping" must not depend on that race.
        self._state = ProcessState.RUNNING
        self._emit(EventKind.STARTED, ProcessState.RUNNING, previous)
        self._emit(EventKind.STATUS, ProcessState.RUNNING, previous)
        self._set_state(first)
        log.debug("process %s started: pid %d, %s", self._name, run.pid,
                  [self._command, *self._options.args])
        self._owner.watch(self)

    def attach(self, pid: int) -> None:
        """Watch ``pid``, a process started elsewhere (manager use)."""
        self._replace_run(ProcessRun.attach(self._loop, self._name, pid, self._exited))
        previous = self._state
        self._state = self._first_state(pid)
        self._emit(EventKind.STATUS, self._state, previous)
        self._owner.watch(self)

    def _replace_run(self, run: ProcessRun) -> None:
        old, self._run = self._run, run
        if old is not None:
            old.close_stat()  # an attached zombie's, still watched until now

    def _first_state(self, pid: int) -> ProcessState:
        """The status file read at start; a child that exited already counts as running."""
        try:
            self._status = read_status(pid)
        except ProcessLookupError:
            return ProcessState.RUNNING
        except OSError:
            self._status = ProcessStatus(state=ProcessState.UNAVAILABLE)
            return ProcessState.UNAVAILABLE
        state = self._status.state
        if not state.is_alive or state is ProcessState.UNKNOWN:
            state = ProcessState.RUNNING
            self._status = replace(self._status, state=state)
        return state

    # -- exit ----------------------------------------------------------------
    def poll(self) -> None:
        """One watcher tick: notice a state change (and, without pidfd, an exit)."""
        run = self._run
        stat = run.stat if run is not None else None
        if run is None or stat is None:
            return
        try:
            state = stat.read().state
        except ProcessLookupError:
            if run.alive:
                self._exited()
            else:  # an attached zombie that its parent has reaped now
                run.close_stat()
                self._set_state(ProcessState.TERMINATED)
                self._owner.unwatch(self)
            return
        except OSError:
            state = ProcessState.UNAVAILABLE
        if run.alive and not state.is_alive:
            if not run.has_pidfd:
                self._exited()
            return  # exited: the pidfd callback reports it
        if state is not self._state:
            self._observe(state)

    def _observe(self, state: ProcessState) -> None:
        if state is self._state:
            return
        pid = self.pid
        if state not in (ProcessState.UNAVAILABLE, ProcessState.TERMINATED) \
                and pid is not None and self._status.state is not state:
            with contextlib.suppress(OSError):
                self._status = read_status(pid)
        self._set_state(state)

    def _exited(self) -> None:
        run = self._run
        if run is None or not run.alive:
            return
        run.close_pidfd()
        outcome = run.reap(self._options.auto_terminate)
        if outcome is None:  # not reapable yet; cannot normally happen
            self._loop.call_later(0.005, self._exited)
            return
        returncode, state = outcome
        if state is ProcessState.TERMINATED:
            run.close_stat()
        self._returncode = self._last_returncode = returncode
        run.exit.set_result(returncode)
        expected = self._stop_requested or self._released or self._owner.closing
        ran = time.monotonic() - run.start_mono
        self._set_state(state, returncode=returncode, expected=expected)
        if state is ProcessState.TERMINATED:
            self._owner.unwatch(self)
        if not expected:
            log.log(logging.DEBUG if self._options.quiet_exit else logging.INFO,
                    "process %s (pid %d) exited: %s", self._name, run.pid,
                    describe_exit(returncode))
            self._schedule_restart(ran)

    def _schedule_restart(self, ran: float) -> None:
        delay = self._policy.after_exit(ran, self._returncode, bool(self._command))
        if delay is None:
            if self._policy.exhausted:
                log.warning("process %s: no restarts left (%d used)", self._name,
                            self._policy.used)
                self._emit(EventKind.GAVE_UP, self._state, self._state,
                           returncode=self._returncode)
            return
        if delay <= 0:
            self._auto_restart()
            return
        self._emit(EventKind.BACKOFF, self._state, self._state, returncode=self._returncode,
                   delay=delay)
        self._restart_timer = self._loop.call_later(delay, self._auto_restart)

    def _auto_restart(self) -> None:
        self._restart_timer = None
        if self._stop_requested or self._released or self._owner.closing:
            return
        self._policy.count += 1
        try:
            self._spawn()
        except ProcessStartError as exc:
            log.error("process %s: restart failed: %s", self._name, exc.reason)  # noqa: TRY400
            self._schedule_restart(0.0)

    # -- plumbing ------------------------------------------------------------
    def _set_state(self, state: ProcessState, *, kind: EventKind = EventKind.STATUS,
                   returncode: int | None = None, expected: bool = False) -> None:
        previous = self._state
        if state is previous and kind is EventKind.STATUS:
            return
        self._state = state
        if self._status.state is not state:
            self._status = replace(self._status, state=state)
        self._emit(kind, state, previous, returncode=returncode, expected=expected)

    def _emit(self, kind: EventKind, state: ProcessState, previous: ProcessState, *,
              returncode: int | None = None, expected: bool = False,
              delay: float | None = None) -> None:
        event = ProcessEvent.now(name=self._name, kind=kind, state=state, previous=previous,
                                 pid=self.pid, returncode=returncode, expected=expected,
                                 restarts=self._policy.count, delay=delay)
        self._fanout.emit(event)
        self._owner.process_event(event)

    def _cancel_restart(self) -> None:
        timer, self._restart_timer = self._restart_timer, None
        if timer is not None:
            timer.cancel()

    def _close_readers(self) -> None:
        readers, self._readers = self._readers, []
        for reader in readers:
            reader.close()

    def release(self) -> None:
        """Stop watching and forget the process; it keeps running (manager use)."""
        if self._released:
            return
        self._released = True
        self._cancel_restart()
        if self._run is not None:
            self._run.release()
        self._close_readers()
        self._fanout.end()
        self._owner.unwatch(self)


"""One managed process: start, stop, restart, signal, wait, and what its status is.

Exit is an event: the process's pidfd becomes readable the moment it exits
(for children and for attached processes alike), and the restart, when one
is due, is started from that very callback. The periodic watcher only reads
``/proc/<pid>/stat`` to notice state changes such as running -> sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import replace
from signal import Signals
from typing import Protocol

from . import reaper
from ._spawn import (
    PipeReader,
    StreamPlan,
    describe_exit,
    group_exists,
    killpg,
    plan_stream,
    reason,
    spawn,
)
from .errors import AttachError, ProcessNotRunningError, ProcessStartError
from .events import DEFAULT_BUFFER, EventKind, Fanout, ProcessEvent, Subscription
from .options import ProcessOptions
from .restart import RestartPolicy
from .status import ProcessState, ProcessStatus, StatFile, read_stat, read_status

log = logging.getLogger("sidecar.exec.processmanager")

HAVE_PIDFD = hasattr(os, "pidfd_open")
_GROUP_POLL = 0.02


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
        self._attached = False
        self._popen: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._pgid: int | None = None
        self._pidfd: int | None = None
        self._stat: StatFile | None = None
        self._state = ProcessState.INITIAL
        self._status = ProcessStatus(state=ProcessState.INITIAL)
        self._returncode: int | None = None
        self._last_returncode: int | None = None
        self._exit: asyncio.Future[int | None] | None = None
        self._start_time: float | None = None
        self._start_mono = 0.0
        self._policy = RestartPolicy(options.restarts, options.backoff)
        self._stop_requested = False
        self._released = False
        self._restart_timer: asyncio.TimerHandle | None = None
        self._affinity_timer: asyncio.TimerHandle | None = None
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
        return f"<Process {self._name!r} pid={self._pid} {self._state.value}>"

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
        return self._attached

    @property
    def pid(self) -> int | None:
        return self._pid

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
        return self._start_time

    @property
    def uptime(self) -> float:
        """Seconds since the last start while it runs, else 0."""
        return time.monotonic() - self._start_mono if self.is_alive() else 0.0

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
        return self._start_time is None

    def is_alive(self) -> bool:
        """True from start until exit (a zombie has exited)."""
        return self._exit is not None and not self._exit.done()

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
            if self.is_alive():
                if not self._stop_requested or self._exit is None:
                    return
                await asyncio.shield(self._exit)
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
        if not self.is_alive():
            return False
        self._send(self._options.stop_signal, group=True)
        return True

    async def stop_and_wait(self, kill_after: float | None = None) -> int | None:
        """Stop and wait; SIGKILL the group after ``kill_after`` s (default: the stop timeout)."""
        limit = self._options.stop_timeout if kill_after is None else kill_after
        deadline = time.monotonic() + limit
        exit_future = self._exit
        if not self.stop() or exit_future is None:
            return self._returncode
        try:
            async with asyncio.timeout(limit):
                await asyncio.shield(exit_future)
        except TimeoutError:
            log.warning("process %s (pid %s) did not stop within %gs of %s: sending SIGKILL",
                        self._name, self._pid, limit, self._options.stop_signal.name)
            self._send(signal.SIGKILL, group=True)
            await asyncio.shield(exit_future)
        except asyncio.CancelledError:
            self._send(signal.SIGKILL, group=True)  # whoever cancelled us cannot wait: no orphans
            raise
        await self._finish_group(deadline)
        return self._returncode

    async def kill(self) -> int | None:
        """SIGKILL (the whole group), wait for the exit, and release its pipes."""
        self._stop_requested = True
        self._cancel_restart()
        exit_future = self._exit
        if self.is_alive() and exit_future is not None:
            self._send(signal.SIGKILL, group=True)
            await asyncio.shield(exit_future)
        elif self._pgid is not None:
            killpg(self._pgid, signal.SIGKILL)
        self._close_readers()
        return self._returncode

    async def wait(self) -> int | None:
        """Wait for the current run to end; its exit code (None if unknown or released)."""
        exit_future = self._exit
        if exit_future is None:
            return self._returncode
        return await asyncio.shield(exit_future)

    def signal(self, signum: int, *, group: bool = False) -> None:
        """Send ``signum`` to the process (or its process group)."""
        if not self.is_alive():
            raise ProcessNotRunningError(self._name, f"send signal {signum}")
        self._send(signal.Signals(signum), group=group)

    def update_status(self) -> ProcessStatus:
        """Read the status file now; a changed state is notified."""
        pid = self._pid
        if pid is None or self._stat is None:
            return self._status
        try:
            status = read_status(pid)
        except ProcessLookupError:
            self.poll()
            return self._status
        except OSError:
            self._observe(ProcessState.UNAVAILABLE)
            return self._status
        if self.is_alive() and self._popen is not None and not status.state.is_alive:
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
        options = self._options
        plans: list[StreamPlan] = []
        try:
            plans.append(plan_stream(options.stdout))
            plans.append(plan_stream(options.stderr))
            env = dict(options.env) if options.env is not None else None
            popen = spawn([self._command, *options.args], env=env,
                          cwd=options.working_dir, detach=options.detach,
                          death_signal=options.parent_death_signal,
                          stdout=plans[0], stderr=plans[1])
        except (OSError, ValueError, TypeError, subprocess.SubprocessError) as exc:
            for plan in plans:
                plan.discard()
            raise ProcessStartError(self._name, self._command, reason(exc)) from exc
        for plan in plans:
            for fd in plan.close_after_spawn:
                os.close(fd)
        self._start_time = time.time()
        self._start_mono = time.monotonic()
        previous = self._state
        self._popen = popen
        self._attached = False
        self._pid = self._pgid = popen.pid
        reaper.claim(popen.pid)
        self._returncode = None
        self._stop_requested = False
        self._policy.gave_up = False
        self._exit = self._loop.create_future()
        self._prune_readers()
        for plan, stream in zip(plans, ("stdout", "stderr"), strict=True):
            if plan.read_fd is not None and plan.sink is not None:
                self._readers.append(PipeReader(self._loop, plan.read_fd, plan.sink,
                                                f"{self._name} {stream}"))
        self._open_watch(popen.pid)
        self._apply_affinity(popen.pid)
        state = self._first_state()
        self._state = state
        self._emit(EventKind.STARTED, state, previous)
        log.debug("process %s started: pid %d, %s", self._name, popen.pid,
                  [self._command, *options.args])
        self._owner.watch(self)

    def attach(self, pid: int) -> None:
        """Watch ``pid``, a process started elsewhere (manager use)."""
        try:
            line = read_stat(pid)
        except ProcessLookupError:
            raise AttachError(self._name, pid, "no such process") from None
        except OSError as exc:
            raise AttachError(self._name, pid, reason(exc)) from exc
        if not line.state.is_alive:
            raise AttachError(self._name, pid, "it has already exited")
        self._attached = True
        self._pid = pid
        self._pgid = None
        self._exit = self._loop.create_future()
        self._start_time = line.start_time
        self._start_mono = time.monotonic() - max(time.time() - line.start_time, 0.0)
        reaper.claim(pid)
        try:
            self._open_watch(pid)
        except ProcessLookupError:
            reaper.release(pid)
            raise AttachError(self._name, pid, "it exited while attaching") from None
        previous = self._state
        self._state = self._first_state()
        self._emit(EventKind.STATUS, self._state, previous)
        self._owner.watch(self)

    def _open_watch(self, pid: int) -> None:
        try:
            self._stat = StatFile(pid)
        except ProcessLookupError:
            self._stat = None
            if self._popen is None:
                raise
        except OSError as exc:  # /proc mounted with hidepid: the state stays unavailable
            log.warning("process %s: cannot read its status: %s", self._name, reason(exc))
            self._stat = None
        if HAVE_PIDFD:
            try:
                self._pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                if self._popen is None:
                    raise
                self._loop.call_soon(self._exited)
                return
            except OSError as exc:  # ENOSYS: a kernel older than 5.3; the watcher polls
                log.debug("no pidfd for %s: %s", self._name, exc)
                self._pidfd = None
                return
            self._loop.add_reader(self._pidfd, self._on_pidfd)

    def _first_state(self) -> ProcessState:
        """The status file read at start; a child that exited already counts as running."""
        if self._pid is None:
            return ProcessState.TERMINATED
        try:
            self._status = read_status(self._pid)
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

    def _apply_affinity(self, pid: int) -> None:
        cpus = self._options.cpu_affinity
        if cpus is None:
            return

        def pin() -> None:
            self._affinity_timer = None
            if self._pid != pid or not self.is_alive():
                return
            try:
                os.sched_setaffinity(pid, cpus)
            except OSError as exc:
                log.warning("process %s: cannot set cpu affinity %s: %s", self._name,
                            sorted(cpus), reason(exc))

        if self._options.cpu_affinity_delay > 0:
            self._affinity_timer = self._loop.call_later(self._options.cpu_affinity_delay, pin)
        else:
            pin()

    # -- exit ----------------------------------------------------------------
    def _on_pidfd(self) -> None:
        self._close_pidfd()
        self._exited()

    def poll(self) -> None:
        """One watcher tick: notice a state change (and, without pidfd, an exit)."""
        stat = self._stat
        if stat is None:
            return
        try:
            state = stat.read().state
        except ProcessLookupError:
            if self.is_alive():
                self._exited()
            else:  # an attached zombie that its parent has reaped now
                self._close_stat()
                self._set_state(ProcessState.TERMINATED)
                self._owner.unwatch(self)
            return
        except OSError:
            state = ProcessState.UNAVAILABLE
        if self.is_alive() and not state.is_alive:
            if self._pidfd is None:
                self._exited()
            return  # exited: the pidfd callback reports it
        if state is not self._state:
            self._observe(state)

    def _observe(self, state: ProcessState) -> None:
        if state is self._state:
            return
        if state not in (ProcessState.UNAVAILABLE, ProcessState.TERMINATED) \
                and self._pid is not None and self._status.state is not state:
            with contextlib.suppress(OSError):
                self._status = read_status(self._pid)
        self._set_state(state)

    def _exited(self) -> None:
        exit_future = self._exit
        pid = self._pid
        if exit_future is None or exit_future.done() or pid is None:
            return
        self._close_pidfd()
        returncode: int | None = None
        state = ProcessState.TERMINATED
        if self._popen is not None:
            returncode = self._popen.poll()
            if returncode is None:  # not reapable yet; cannot normally happen
                self._loop.call_later(0.005, self._exited)
                return
            reaper.release(pid)
        else:
            returncode, state = self._attached_exit(pid)
        if state is ProcessState.TERMINATED:
            self._close_stat()
        self._returncode = self._last_returncode = returncode
        exit_future.set_result(returncode)
        expected = self._stop_requested or self._released or self._owner.closing
        ran = time.monotonic() - self._start_mono
        self._set_state(state, returncode=returncode, expected=expected)
        if state is ProcessState.TERMINATED:
            self._owner.unwatch(self)
        if not expected:
            log.log(logging.DEBUG if self._options.quiet_exit else logging.INFO,
                    "process %s (pid %d) exited: %s", self._name, pid, describe_exit(returncode))
            self._schedule_restart(ran)

    def _attached_exit(self, pid: int) -> tuple[int | None, ProcessState]:
        """Reap an attached child with auto-terminate; else report a zombie as such."""
        reaper.release(pid)
        try:
            line = self._stat.read() if self._stat is not None else None
        except (ProcessLookupError, OSError):
            return None, ProcessState.TERMINATED
        if line is None or line.state is not ProcessState.ZOMBIE:
            return None, ProcessState.TERMINATED
        if self._options.auto_terminate and line.ppid == os.getpid():
            with contextlib.suppress(ChildProcessError):
                waited, status = os.waitpid(pid, os.WNOHANG)
                if waited == pid:
                    return os.waitstatus_to_exitcode(status), ProcessState.TERMINATED
        return None, ProcessState.ZOMBIE

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

    async def _finish_group(self, deadline: float) -> None:
        """After the leader has gone: wait for the rest of its group, then SIGKILL it."""
        pgid = self._pgid
        if pgid is None:
            return
        while group_exists(pgid):
            reaper.reap_group_orphans(pgid)
            if not group_exists(pgid):
                return
            if time.monotonic() >= deadline:
                log.warning("process %s: members of process group %d outlived the stop "
                            "timeout: sending SIGKILL", self._name, pgid)
                killpg(pgid, signal.SIGKILL)
                return
            await asyncio.sleep(_GROUP_POLL)

    # -- plumbing ------------------------------------------------------------
    def _send(self, signum: Signals, *, group: bool) -> None:
        if group and self._pgid is not None and killpg(self._pgid, signum):
            return
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)
        elif self._pid is not None and self.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signum)

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
                                 pid=self._pid, returncode=returncode, expected=expected,
                                 restarts=self._policy.count, delay=delay)
        self._fanout.emit(event)
        self._owner.process_event(event)

    def _cancel_restart(self) -> None:
        timer, self._restart_timer = self._restart_timer, None
        if timer is not None:
            timer.cancel()

    def _close_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)

    def _close_stat(self) -> None:
        stat, self._stat = self._stat, None
        if stat is not None:
            stat.close()

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
        if self._affinity_timer is not None:
            self._affinity_timer.cancel()
        self._close_pidfd()
        self._close_stat()
        self._close_readers()
        if self._popen is not None and self._popen.returncode is None:
            reaper.abandon(self._popen)
        elif self._pid is not None:
            reaper.release(self._pid)
        if self._exit is not None and not self._exit.done():
            self._exit.set_result(None)
        self._fanout.end()
        self._owner.unwatch(self)

    def _prune_readers(self) -> None:
        self._readers = [r for r in self._readers if r.open]


"""One run of a managed process, from its start (or attach) to its exit: the kernel's side.

A run holds what the kernel hands out for one pid: the ``Popen`` of a child, a
pidfd that wakes the event loop the moment the process exits, its stat file
(held open, so a reused pid is never read) and its process group. The
:class:`~.process.Process` decides when to start, stop and restart; a run
starts, signals, reaps and lets go.
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
from signal import Signals

from sidecar.agent.errors import reason

from . import reaper
from ._spawn import PipeReader, StreamPlan, group_exists, killpg, plan_stream, spawn
from .errors import AttachError, ProcessStartError
from .options import ProcessOptions
from .status import ProcessState, StatFile, read_stat

log = logging.getLogger("sidecar.exec.processmanager")

HAVE_PIDFD = hasattr(os, "pidfd_open")
_GROUP_POLL = 0.02


class ProcessRun:
    """One pid from start to exit; it stays readable (pid, group, stat) until the next run."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, pid: int, *,
                 popen: subprocess.Popen[bytes] | None, start_time: float,
                 start_mono: float) -> None:
        self._loop = loop
        self._name = name
        self.pid = pid
        #: The child, for its exit code; None when attached to a process started elsewhere.
        self.popen = popen
        #: The group signalled on stop and waited for after the leader: a child's own.
        self.pgid = popen.pid if popen is not None else None
        #: Done at exit, with the exit code (None when unknown or released).
        self.exit: asyncio.Future[int | None] = loop.create_future()
        self.start_time = start_time
        self.start_mono = start_mono
        #: Open until the process has been reaped (an attached zombie keeps it).
        self.stat: StatFile | None = None
        self._pidfd: int | None = None
        self._affinity_timer: asyncio.TimerHandle | None = None

    @classmethod
    def spawn(cls, loop: asyncio.AbstractEventLoop, name: str, command: str,
              options: ProcessOptions,
              on_exit: Callable[[], None]) -> tuple[ProcessRun, list[PipeReader]]:
        """Start ``command``; the run and the readers of its piped output. ProcessStartError."""
        plans: list[StreamPlan] = []
        try:
            plans.append(plan_stream(options.stdout, "stdout"))
            plans.append(plan_stream(options.stderr, "stderr"))
            env = dict(options.env) if options.env is not None else None
            popen = spawn([command, *options.args], env=env,
                          cwd=options.working_dir, detach=options.detach,
                          death_signal=options.parent_death_signal,
                          stdout=plans[0], stderr=plans[1])
        except (OSError, ValueError, TypeError, subprocess.SubprocessError) as exc:
            for plan in plans:
                plan.discard()
            raise ProcessStartError(name, command, reason(exc)) from exc
        for plan in plans:
            for fd in plan.close_after_spawn:
                os.close(fd)
        run = cls(loop, name, popen.pid, popen=popen, start_time=time.time(),
                  start_mono=time.monotonic())
        reaper.claim(popen.pid)
        readers = [PipeReader(loop, plan.read_fd, plan.sink, f"{name} {stream}")
                   for plan, stream in zip(plans, ("stdout", "stderr"), strict=True)
                   if plan.read_fd is not None and plan.sink is not None]
        run.watch(on_exit)
        run.pin_cpus(options.cpu_affinity, options.cpu_affinity_delay)
        return run, readers

    @classmethod
    def attach(cls, loop: asyncio.AbstractEventLoop, name: str, pid: int,
               on_exit: Callable[[], None]) -> ProcessRun:
        """Watch ``pid``, started elsewhere. AttachError when it is not there."""
        try:
            line = read_stat(pid)
        except ProcessLookupError:
            raise AttachError(name, pid, "no such process") from None
        except OSError as exc:
            raise AttachError(name, pid, reason(exc)) from exc
        if not line.state.is_alive:
            raise AttachError(name, pid, "it has already exited")
        run = cls(loop, name, pid, popen=None, start_time=line.start_time,
                  start_mono=time.monotonic() - max(time.time() - line.start_time, 0.0))
        reaper.claim(pid)
        try:
            run.watch(on_exit)
        except ProcessLookupError:
            run.close_stat()
            reaper.release(pid)
            raise AttachError(name, pid, "it exited while attaching") from None
        return run

    @property
    def alive(self) -> bool:
        """From start until exit (a zombie has exited)."""
        return not self.exit.done()

    @property
    def has_pidfd(self) -> bool:
        """The exit wakes the loop; without (kernel < 5.3) the watcher's poll notices it."""
        return self._pidfd is not None

    # -- watching --------------------------------------------------------------
    def watch(self, on_exit: Callable[[], None]) -> None:
        """Open the stat file and the pidfd; ``on_exit()`` is called (once) when it exits.

        ProcessLookupError when an attached process has gone already; a child
        that has exited is reported through ``on_exit``.
        """
        try:
            self.stat = StatFile(self.pid)
        except ProcessLookupError:
            self.stat = None
            if self.popen is None:
                raise
        except OSError as exc:  # /proc mounted with hidepid: the state stays unavailable
            log.warning("process %s: cannot read its status: %s", self._name, reason(exc))
            self.stat = None
        if not HAVE_PIDFD:
            return
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            if self.popen is None:
                raise
            self._loop.call_soon(on_exit)
            return
        except OSError as exc:  # ENOSYS: a kernel older than 5.3; the watcher polls
            log.debug("no pidfd for %s: %s", self._name, exc)
            self._pidfd = None
            return

        def exited() -> None:
            self.close_pidfd()
            on_exit()

        self._loop.add_reader(self._pidfd, exited)

    def close_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)

    def close_stat(self) -> None:
        stat, self.stat = self.stat, None
        if stat is not None:
            stat.close()

    def pin_cpus(self, cpus: frozenset[int] | None, delay: float) -> None:
        """Set the cpu affinity now, or after ``delay`` s (a program that sets its own)."""
        if cpus is None:
            return

        def pin() -> None:
            self._affinity_timer = None
            if not self.alive:
                return
            try:
                os.sched_setaffinity(self.pid, cpus)
            except OSError as exc:
                log.warning("process %s: cannot set cpu affinity %s: %s", self._name,
                            sorted(cpus), reason(exc))

        if delay > 0:
            self._affinity_timer = self._loop.call_later(delay, pin)
        else:
            pin()

    # -- signals ---------------------------------------------------------------
    def send(self, signum: Signals, *, group: bool) -> None:
        """Signal the process, or its whole group when it has one of its own."""
        if group and self.pgid is not None and killpg(self.pgid, signum):
            return
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signum)
        elif self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill_group(self) -> None:
        """SIGKILL what is left of its group (the leader has exited)."""
        if self.pgid is not None:
            killpg(self.pgid, signal.SIGKILL)

    async def finish_group(self, deadline: float) -> None:
        """After the leader has gone: wait for the rest of its group, then SIGKILL it."""
        pgid = self.pgid
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

    # -- the end ---------------------------------------------------------------
    def reap(self, auto_terminate: bool) -> tuple[int | None, ProcessState] | None:
        """After the exit: the exit code and TERMINATED (or ZOMBIE: an attached process
        its parent has not reaped yet). None: the child cannot be reaped yet."""
        if self.popen is not None:
            returncode = self.popen.poll()
            if returncode is None:
                return None
            reaper.release(self.pid)
            return returncode, ProcessState.TERMINATED
        reaper.release(self.pid)
        try:
            line = self.stat.read() if self.stat is not None else None
        except (ProcessLookupError, OSError):
            return None, ProcessState.TERMINATED
        if line is None or line.state is not ProcessState.ZOMBIE:
            return None, ProcessState.TERMINATED
        if auto_terminate and line.ppid == os.getpid():
            with contextlib.suppress(ChildProcessError):
                waited, status = os.waitpid(self.pid, os.WNOHANG)
                if waited == self.pid:
                    return os.waitstatus_to_exitcode(status), ProcessState.TERMINATED
        return None, ProcessState.ZOMBIE

    def release(self) -> None:
        """Stop watching; a child still running is left to the reaper. Idempotent."""
        if self._affinity_timer is not None:
            self._affinity_timer.cancel()
        self.close_pidfd()
        self.close_stat()
        if self.popen is not None and self.popen.returncode is None:
            reaper.abandon(self.popen)
        else:
            reaper.release(self.pid)
        if not self.exit.done():
            self.exit.set_result(None)

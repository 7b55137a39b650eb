"""Reaping zombies nobody else waits for, without stealing anyone's exit status.

A zombie stays in the process table until its parent waits for it. The
process manager waits for its own children the moment they exit (their
pidfd turns readable), but two kinds of zombie have no such waiter:

* orphans re-parented to the sidecar because it is PID 1 of its container
  or a child subreaper (a daemon's double fork, a killed shell's jobs);
* children that someone started and forgot.

``waitpid(-1)`` would reap those, and also the children that asyncio's child
watcher, ``subprocess.run`` in a thread or the process manager are about to
wait for, who would then never learn the exit status. So the reaper never
waits for "any" child: it lists the sidecar's children
(``/proc/self/task/*/children``), skips the pids the process manager claims,
and reaps with ``waitpid(pid, WNOHANG)`` only a child that has been a zombie
for at least ``grace`` seconds. Every waiter in the standard library blocks
in ``waitpid`` or polls its pidfd, so it reaps within milliseconds; a zombie
that is still there a second later has nobody waiting. The one caller that
can lose a status is code that polls ``Popen.poll()`` less often than the
grace period; it then sees exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from sidecar.agent.tasks import cancel_and_wait, spawn

from .status import ProcessState, StatFile, all_stat_lines, describe_exit, read_stat

log = logging.getLogger("sidecar.exec.processmanager")

DEFAULT_REAP_INTERVAL = 1.0

# Pids whose exit status belongs to a managed process: nobody else may reap them.
_claimed: set[int] = set()
# Children whose Popen nobody holds any more (a deleted process): polled until they exit,
# so that they are reaped and Popen.__del__ never warns.
_abandoned: list[subprocess.Popen[bytes]] = []


def claim(pid: int) -> None:
    _claimed.add(pid)


def release(pid: int) -> None:
    _claimed.discard(pid)


def is_claimed(pid: int) -> bool:
    return pid in _claimed


def abandon(popen: subprocess.Popen[bytes]) -> None:
    """Hand over a child nobody watches any more; it is reaped when it exits."""
    if popen.poll() is None:
        _abandoned.append(popen)
    release(popen.pid)


def poll_abandoned() -> int:
    """Reap the abandoned children that have exited; how many are left."""
    for popen in list(_abandoned):
        if popen.poll() is not None:
            _abandoned.remove(popen)
    return len(_abandoned)


def child_pids() -> list[int]:
    """This process's children, from every thread's ``children`` file."""
    pids: list[int] = []
    try:
        tasks = list(Path("/proc/self/task").iterdir())
    except OSError:
        return pids
    for task in tasks:
        try:
            pids.extend(int(p) for p in (task / "children").read_bytes().split())
        except (OSError, ValueError):
            continue
    if not pids and not Path(f"/proc/self/task/{os.getpid()}/children").exists():
        pids = list(_scan_for_children())  # a kernel without CONFIG_PROC_CHILDREN
    return pids


def _scan_for_children() -> Iterator[int]:
    me = os.getpid()
    return (pid for pid, line in all_stat_lines() if line.ppid == me)


def reap_group_orphans(pgid: int) -> int:
    """Reap zombies of process group ``pgid`` re-parented to us; how many were reaped.

    They were children of a group leader the manager started and has stopped:
    nobody else in this process can be waiting for them, so no grace applies.
    """
    count = 0
    for pid in child_pids():
        if pid in _claimed:
            continue
        try:
            line = read_stat(pid)
        except OSError:
            continue
        if line.pgid != pgid or line.state is not ProcessState.ZOMBIE:
            continue
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                count += 1
    return count


def _live_orphans(spared: frozenset[int] = frozenset()) -> list[int]:
    live = []
    for pid in child_pids():
        if pid in _claimed or pid in spared:
            continue
        try:
            if read_stat(pid).state is not ProcessState.ZOMBIE:
                live.append(pid)
        except OSError:
            continue
    return live


def _reap(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


async def stop_orphans(grace: float, spared: frozenset[int] = frozenset()) -> int:
    """SIGTERM every live child no managed process claims (a subreaper's adopted orphans:
    a daemon's double fork), SIGKILL what is left after ``grace`` s, reap them; how many.

    For the end of a subreaper's stop, once the managed processes are gone: nothing
    the programs started outlives a graceful stop of the sidecar. ``spared``: children
    the host process had before it became a subreaper (they were never adopted).
    """
    orphans = _live_orphans(spared)
    if not orphans:
        return 0
    log.info("stopping %d orphaned process(es) the sidecar adopted: %s", len(orphans),
             ", ".join(map(str, orphans)))
    for pid in orphans:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    left, killed = orphans, False
    while left:
        await asyncio.sleep(0.02)
        _reap(left)
        alive = set(_live_orphans(spared))
        left = [pid for pid in left if pid in alive]
        if left and not killed and time.monotonic() >= deadline:
            killed = True
            log.warning("orphaned process(es) %s outlived SIGTERM by %gs: sending SIGKILL",
                        ", ".join(map(str, left)), grace)
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    _reap(orphans)
    return len(orphans)


class ZombieReaper:
    """Sweeps every ``interval`` seconds; reaps unclaimed zombies older than ``grace``."""

    def __init__(self, interval: float = DEFAULT_REAP_INTERVAL,
                 grace: float | None = None) -> None:
        if interval <= 0:
            raise ValueError(f"reap interval must be positive, got {interval}")
        self.interval = interval
        self.grace = interval if grace is None else grace
        self.reaped = 0
        self._zombie_since: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    def sweep(self) -> list[tuple[int, int]]:
        """One pass; returns ``(pid, wait status)`` of each child reaped."""
        poll_abandoned()
        now = time.monotonic()
        seen: dict[int, float] = {}
        reaped: list[tuple[int, int]] = []
        for pid in child_pids():
            if pid in _claimed:
                continue
            try:
                stat = StatFile(pid)
            except ProcessLookupError:
                continue
            try:
                state = stat.read().state
            except (ProcessLookupError, OSError):
                continue
            finally:
                stat.close()
            if state is not ProcessState.ZOMBIE:
                continue
            since = self._zombie_since.get(pid, now)
            if now - since < self.grace:
                seen[pid] = since
                continue
            try:
                waited, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # somebody else reaped it after all
                continue
            if waited == pid:
                reaped.append((pid, status))
        self._zombie_since = seen
        if reaped:
            self.reaped += len(reaped)
            log.debug("reaped %d zombie(s): %s", len(reaped),
                      ", ".join(f"{pid} ({_describe(status)})" for pid, status in reaped))
        return reaped

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.running:
            return
        self._task = spawn(self._loop(), "process-manager-reaper")

    async def _loop(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception:  # the next sweep may well work; never stop reaping
                log.exception("zombie sweep failed")
            await asyncio.sleep(self.interval)

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)


def _describe(status: int) -> str:
    return describe_exit(os.waitstatus_to_exitcode(status))

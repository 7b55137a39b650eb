"""Running hooks: concurrently, each with a timeout, never in supervision's way.

Events go into a queue per program (the "lane"), drained by one task per
program that has events waiting: a program's events are handled in order,
every matching hook of one event at once. All lanes share a limit of hook
processes running at the same time; waiting for a slot is first come, first
served, and a lane holds one event in flight, so a crash-looping program
gets its turn like any other and cannot starve them. When a lane's backlog
is full its oldest event is dropped (counted and logged).

Hooks are processes of a process manager of their own (so they never appear
among the programs): their own process group, a parent-death signal, exit
noticed through a pidfd, and what is left of the group killed after the hook
exits or times out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sidecar.agent.tasks import spawn
from sidecar.exec.processmanager import (
    ProcessManager,
    ProcessManagerError,
    ProcessOptions,
    ProcessStartError,
    describe_exit,
)

from .api import ProgramEvent
from .config import (
    DEFAULT_HOOK_BACKLOG,
    DEFAULT_HOOK_CONCURRENCY,
    HookConfig,
    SupervisorConfig,
    resolve_command,
)

log = logging.getLogger("sidecar.supervisor")

#: After its timeout a hook gets SIGTERM, then SIGKILL this much later.
HOOK_KILL_GRACE = 1.0
#: Lines of a hook's output kept to show with its failure.
_TAIL_LINES = 5
#: At most one warning per hook (and for dropped events) in this many seconds.
_WARN_EVERY = 10.0
# Hooks are short-lived: their state (running, sleeping) is of no interest.
_HOOK_STATUS_INTERVAL = 60.0


@dataclass
class HookStats:
    """What one hook has done since the sidecar started."""

    runs: int = 0
    failures: int = 0
    timeouts: int = 0
    #: Seconds spent running, over all runs.
    seconds: float = 0.0
    last_error: str | None = None
    last_run: float | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"runs": self.runs, "failures": self.failures,
                                   "timeouts": self.timeouts,
                                   "seconds": round(self.seconds, 3)}
        if self.last_run is not None:
            data["last_run"] = self.last_run
        if self.last_error:
            data["last_error"] = self.last_error
        return data


@dataclass(frozen=True)
class _Hook:
    config: HookConfig
    command: str
    timeout: float


@dataclass
class _Throttle:
    """Rate-limits a repeated warning, counting what it held back."""

    last: float = float("-inf")
    held: int = 0

    def allow(self) -> tuple[bool, int]:
        now = time.monotonic()
        if now - self.last < _WARN_EVERY:
            self.held += 1
            return False, 0
        held, self.held, self.last = self.held, 0, now
        return True, held


class HookRunner:
    """Runs the configured hooks for every program event handed to :meth:`submit`."""

    def __init__(self) -> None:
        self.manager = ProcessManager(status_interval=_HOOK_STATUS_INTERVAL)
        self._hooks: tuple[_Hook, ...] = ()
        self._backlog = DEFAULT_HOOK_BACKLOG
        self._slots = asyncio.Semaphore(DEFAULT_HOOK_CONCURRENCY)
        self._concurrency = DEFAULT_HOOK_CONCURRENCY
        self._lanes: dict[str, deque[tuple[ProgramEvent, tuple[_Hook, ...]]]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._open = True
        self._seq = 0
        self._throttles: dict[str, _Throttle] = {}
        self.stats: dict[str, HookStats] = {}
        #: Events dropped because a program's backlog was full.
        self.dropped = 0
        #: Hook processes running now.
        self.running = 0
        #: Called with (hook name, program event, seconds from the event to the hook's start).
        self.on_start: Callable[[str, ProgramEvent, float], None] | None = None

    def configure(self, config: SupervisorConfig) -> None:
        """Use ``config``'s hooks for the events submitted from now on."""
        self._hooks = tuple(_Hook(h, resolve_command(h.cmd), config.hook_timeout_of(h))
                            for h in config.hooks)
        self._backlog = config.hook_backlog
        if config.hook_concurrency != self._concurrency:
            # Runs in flight keep the slot they hold; new ones share the new limit.
            self._concurrency = config.hook_concurrency
            self._slots = asyncio.Semaphore(config.hook_concurrency)
        for hook in self._hooks:
            self.stats.setdefault(hook.config.name, HookStats())

    @property
    def pending(self) -> int:
        """Events waiting for their hooks."""
        return sum(len(lane) for lane in self._lanes.values())

    async def start(self) -> None:
        await self.manager.start()

    def submit(self, event: ProgramEvent) -> None:
        """Queue the hooks matching ``event``; never blocks, never raises."""
        if not self._open:
            return
        hooks = tuple(h for h in self._hooks if h.config.matches(event.program, event.state))
        if not hooks:
            return
        lane = self._lanes.get(event.program)
        if lane is None:
            lane = self._lanes[event.program] = deque()
        if len(lane) >= self._backlog:
            lane.popleft()
            self.dropped += 1
            allowed, held = self._throttle("dropped").allow()
            if allowed:
                log.warning("program %s: %d events wait for their hooks; dropping the oldest "
                            "(%d dropped in all%s)", event.program, len(lane), self.dropped,
                            f", {held} warnings held back" if held else "")
        lane.append((event, hooks))
        if event.program not in self._tasks:
            self._tasks[event.program] = spawn(self._drain(event.program),
                                               f"supervisor-hooks:{event.program}")

    async def _drain(self, program: str) -> None:
        lane = self._lanes[program]
        try:
            while lane:
                event, hooks = lane.popleft()
                await asyncio.gather(*(self._run(hook, event) for hook in hooks))
        finally:
            # No await between the last look at the lane and this: submit() sees either
            # a lane with a task or none at all.
            if self._tasks.get(program) is asyncio.current_task():
                del self._tasks[program]
                if not lane and self._lanes.get(program) is lane:
                    del self._lanes[program]

    def _throttle(self, key: str) -> _Throttle:
        throttle = self._throttles.get(key)
        if throttle is None:
            throttle = self._throttles[key] = _Throttle()
        return throttle

    async def _run(self, hook: _Hook, event: ProgramEvent) -> None:
        slots = self._slots
        async with slots:
            if not self._open:
                return
            await self._run_one(hook, event)

    async def _run_one(self, hook: _Hook, event: ProgramEvent) -> None:
        config = hook.config
        stats = self.stats.setdefault(config.name, HookStats())
        tail: deque[str] = deque(maxlen=_TAIL_LINES)

        def output(line: str) -> None:
            tail.append(line)
            log.debug("hook %s (%s %s): %s", config.name, event.program, event.state, line)

        stats.runs += 1
        stats.last_run = time.time()
        begin = time.monotonic()
        error: str | None = None
        timed_out = False
        self.running += 1
        try:
            error, timed_out = await self._execute(hook, event, config.logfile_path or output)
        except ProcessManagerError as exc:  # closed under us: the supervisor is stopping
            error = str(exc)
        finally:
            self.running -= 1
            stats.seconds += time.monotonic() - begin
            if error is not None:
                self._failed(config.name, stats, event, error, timed_out=timed_out,
                             tail=list(tail))

    async def _execute(self, hook: _Hook, event: ProgramEvent,
                       writer: str | Callable[[str], None]) -> tuple[str | None, bool]:
        """Run the hook once: (why it failed or None, whether it timed out)."""
        self._seq += 1
        name = f"hook-{self._seq}"
        options = ProcessOptions(args=hook.config.cmd_args, env=event.hook_env(),
                                 stdout=writer, stderr=writer, stop_timeout=HOOK_KILL_GRACE,
                                 quiet_exit=True)
        process = await self.manager.new_process(name, hook.command, options)
        try:
            try:
                await process.start()
            except ProcessStartError as exc:
                return f"cannot start {hook.command}: {exc.reason}", False
            if self.on_start is not None:
                self.on_start(hook.config.name, event, time.time() - event.time)
            error: str | None = None
            timed_out = False
            try:
                async with asyncio.timeout(hook.timeout):
                    code = await process.wait()
            except TimeoutError:
                timed_out = True
                error = f"did not finish within {hook.timeout:g}s: stopped"
                await process.stop_and_wait(HOOK_KILL_GRACE)
            else:
                error = None if code == 0 else describe_exit(code)
            # Whatever the hook left behind in its process group goes with it.
            await process.kill()
        except asyncio.CancelledError:
            # SIGKILL and reap it before letting go: nothing outlives a stopping supervisor.
            await process.kill()
            raise
        finally:
            await self.manager.delete(name)
        return error, timed_out

    def _failed(self, hook: str, stats: HookStats, event: ProgramEvent, error: str, *,
                timed_out: bool, tail: list[str]) -> None:
        stats.failures += 1
        stats.timeouts += timed_out
        stats.last_error = error
        allowed, held = self._throttle(hook).allow()
        if not allowed:
            return
        output = f"; last output: {' | '.join(tail)}" if tail else ""
        more = f" ({held} more failures not logged)" if held else ""
        log.warning("hook %s for %s %s failed: %s%s%s", hook, event.program, event.state,
                    error, output, more)

    def shut(self) -> None:
        """Accept no more events (what is queued or running is left to :meth:`close`)."""
        self._open = False

    async def close(self) -> None:
        """Run no more hooks: drop what waits, stop what runs. Idempotent."""
        self._open = False
        waiting = self.pending
        if waiting:
            log.info("stopping: %d program event(s) will not run their hooks", waiting)
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.clear()
            self._lanes.clear()
            await self.manager.close()


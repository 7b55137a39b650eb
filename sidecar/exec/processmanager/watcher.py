"""The status watcher: one task reads the state of every watched process each interval.

Exits do not wait for it (they arrive through pidfds); it exists to notice
changes such as running -> sleeping -> stopped, and costs one ``pread`` of
``/proc/<pid>/stat`` per process and tick.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sidecar.agent.tasks import cancel_and_wait, spawn

from . import reaper

if TYPE_CHECKING:
    from .process import Process

log = logging.getLogger("sidecar.exec.processmanager")

DEFAULT_STATUS_INTERVAL = 1.0
MIN_STATUS_INTERVAL = 0.01


class StatusWatcher:
    def __init__(self, interval: float = DEFAULT_STATUS_INTERVAL) -> None:
        if interval < MIN_STATUS_INTERVAL:
            raise ValueError(f"status interval must be at least {MIN_STATUS_INTERVAL}s, "
                             f"got {interval}")
        self.interval = interval
        self._processes: dict[int, Process] = {}
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def add(self, process: Process) -> None:
        self._processes[id(process)] = process
        self.start()

    def remove(self, process: Process) -> None:
        self._processes.pop(id(process), None)

    def __len__(self) -> int:
        return len(self._processes)

    def start(self) -> None:
        if self._closed or (self._task is not None and not self._task.done()):
            return
        self._task = spawn(self._run(), "process-manager-status", on_crash=self._crashed)

    def tick(self) -> None:
        """Read every watched process once."""
        for process in list(self._processes.values()):
            try:
                process.poll()
            except Exception:  # one process's trouble must not blind the watcher to the rest
                log.exception("status check of process %s failed", process.name)
        reaper.poll_abandoned()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.tick()

    def _crashed(self, error: BaseException) -> None:
        if self._closed:
            return
        log.warning("restarting the process status watcher")  # spawn logged the crash
        self._task = None
        self.start()

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._processes.clear()

"""Helpers for process manager tests: waiting on conditions, looking at pids."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest


class Pids:
    """Pids (and process groups) a test started outside a manager; SIGKILLed at teardown."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.groups: list[int] = []

    def add(self, pid: int, *, group: bool = False) -> int:
        (self.groups if group else self.pids).append(pid)
        return pid

    def kill_all(self) -> None:
        for pgid in self.groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        for pid in self.pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.pids:  # reap the ones that are our children
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def running(pid: int) -> bool:
    """The process exists and has not exited (a zombie has exited)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def eventually(condition: Callable[[], object], timeout: float = 5.0,
                     what: str = "condition", interval: float = 0.01) -> object:
    """Wait until ``condition()`` is truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s")
        await asyncio.sleep(interval)


def wait_until_sync(condition: Callable[[], object], timeout: float = 5.0,
                    what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(0.01)

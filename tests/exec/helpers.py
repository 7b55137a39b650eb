"""Helpers for process manager tests: waiting on conditions, looking at pids."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

PopenT = TypeVar("PopenT", bound="subprocess.Popen[Any]")


class Pids:
    """Processes (and process groups) a test started outside a manager; SIGKILLed at teardown."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.groups: list[int] = []
        self.popens: list[subprocess.Popen[Any]] = []

    def add(self, pid: int, *, group: bool = False) -> int:
        (self.groups if group else self.pids).append(pid)
        return pid

    def track(self, popen: PopenT) -> PopenT:
        """Kill ``popen``, wait for it and close its pipes at teardown, pass or fail: a Popen
        collected before it was waited for warns "subprocess N is still running"."""
        self.popens.append(popen)
        return popen

    def kill_all(self) -> None:
        for pgid in self.groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        for popen in self.popens:
            popen.kill()  # does nothing once it has been waited for
            popen.wait()
            for stream in (popen.stdin, popen.stdout, popen.stderr):
                if stream is not None:
                    stream.close()
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

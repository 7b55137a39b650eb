"""Fixtures for process manager tests: a manager that is always closed, and a pid sweeper."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from sidecar.exec.processmanager import ProcessManager
from tests.exec.helpers import Pids


@pytest.fixture
async def manager() -> AsyncIterator[ProcessManager]:
    pm = ProcessManager(status_interval=0.05)
    try:
        yield pm
    finally:
        await pm.close()


@pytest.fixture
def pids() -> Iterator[Pids]:
    tracked = Pids()
    try:
        yield tracked
    finally:
        tracked.kill_all()

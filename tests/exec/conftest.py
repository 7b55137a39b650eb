"""Fixtures for process manager tests: a manager that is always closed, a pid sweeper, and a
check that no test leaves behind a child the manager let go of."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from sidecar.exec.processmanager import ProcessManager
from sidecar.exec.processmanager.reaper import poll_abandoned
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


@pytest.fixture(autouse=True)
def no_abandoned_children() -> Iterator[None]:
    """Collect the exit status of children the manager let go of (deleted, or detached at
    close) once the test's fixtures have killed them; fail a test that leaves one running.

    Their Popens live on in the reaper until polled: one still unpolled when the
    interpreter exits warns "subprocess N is still running".
    """
    before = poll_abandoned()
    yield
    left = poll_abandoned()
    if left > before:
        pytest.fail(f"the test left {left - before} child process(es) running that the "
                    "process manager let go of: kill them (the pids fixture) and wait")

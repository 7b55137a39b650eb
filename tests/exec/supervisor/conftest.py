"""A supervisor (in this process, real programs) that is always closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from sidecar.exec.supervisor import Supervisor, parse_supervisor_config
from sidecar.health.statuscheck import StatusCheck

MakeSupervisor = Callable[..., Awaitable[Supervisor]]


@pytest.fixture
def statuscheck() -> StatusCheck:
    return StatusCheck()


@pytest.fixture
async def make_supervisor(statuscheck: StatusCheck) -> AsyncIterator[MakeSupervisor]:
    made: list[Supervisor] = []

    async def make(text: str, **kwargs: Any) -> Supervisor:
        kwargs.setdefault("statuscheck", statuscheck)
        supervisor = Supervisor(parse_supervisor_config(text, "test.conf"), **kwargs)
        made.append(supervisor)
        await supervisor.init()
        return supervisor

    try:
        yield make
    finally:
        for supervisor in made:
            await supervisor.close()

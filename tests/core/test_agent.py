"""Agent lifecycle: ordering, unwinding on failure, timeouts and close errors."""

from __future__ import annotations

import asyncio

import pytest

from sidecar import Agent, AgentStartError, AgentStopError
from sidecar.agent import order_plugins


class Recorder:
    def __init__(self, name: str, log: list[str], *deps: Recorder, fail_in: str = "",
                 hang_in: str = "") -> None:
        self.name = name
        self.deps = deps
        self.log = log
        self.fail_in = fail_in
        self.hang_in = hang_in

    async def _step(self, phase: str) -> None:
        self.log.append(f"{phase}:{self.name}")
        if self.hang_in == phase:
            await asyncio.Event().wait()
        if self.fail_in == phase:
            raise RuntimeError(f"{self.name} broke in {phase}")

    async def init(self) -> None:
        await self._step("init")

    async def after_init(self) -> None:
        await self._step("after_init")

    async def close(self) -> None:
        await self._step("close")


async def test_dependencies_start_first_and_close_last() -> None:
    log: list[str] = []
    db = Recorder("db", log)
    api = Recorder("api", log, db)
    web = Recorder("web", log, api)
    async with Agent(web, api):  # db is pulled in as a dependency
        pass
    assert log == ["init:db", "init:api", "init:web",
                   "after_init:db", "after_init:api", "after_init:web",
                   "close:web", "close:api", "close:db"]


async def test_init_failure_closes_initialised_plugins_in_reverse_and_names_plugin() -> None:
    log: list[str] = []
    a, b = Recorder("a", log), Recorder("b", log)
    broken = Recorder("broken", log, fail_in="init")
    never = Recorder("never", log)
    agent = Agent(a, b, broken, never)
    with pytest.raises(AgentStartError) as info:
        await agent.start()
    assert info.value.plugin == "broken"
    assert "broken broke in init" in str(info.value)
    assert log == ["init:a", "init:b", "init:broken", "close:b", "close:a"]


async def test_start_timeout_names_the_hanging_plugin() -> None:
    log: list[str] = []
    agent = Agent(Recorder("ok", log), Recorder("slow", log, hang_in="after_init"),
                  start_timeout=0.2)
    with pytest.raises(AgentStartError, match=r"'slow' failed in after_init: did not finish"):
        await agent.start()
    assert log[-2:] == ["close:slow", "close:ok"]


async def test_every_close_runs_and_failures_are_reported_together() -> None:
    log: list[str] = []
    agent = Agent(Recorder("a", log, fail_in="close"), Recorder("b", log),
                  Recorder("c", log, fail_in="close"))
    await agent.start()
    with pytest.raises(AgentStopError) as info:
        await agent.stop()
    assert set(info.value.failures) == {"a", "c"}
    assert log[-3:] == ["close:c", "close:b", "close:a"]


async def test_a_hanging_close_does_not_stop_the_others() -> None:
    log: list[str] = []
    agent = Agent(Recorder("a", log), Recorder("stuck", log, hang_in="close"), stop_timeout=0.2)
    await agent.start()
    with pytest.raises(AgentStopError, match="stuck"):
        await agent.stop()
    assert log[-1] == "close:a"


def test_cycles_and_duplicate_names_are_refused() -> None:
    log: list[str] = []
    a = Recorder("a", log)
    b = Recorder("b", log, a)
    a.deps = (b,)
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        order_plugins([a])
    with pytest.raises(ValueError, match="share the name"):
        order_plugins([Recorder("x", log), Recorder("x", log)])


async def test_started_hooks_run_after_every_after_init() -> None:
    log: list[str] = []
    agent = Agent(Recorder("a", log))
    agent.on_started(lambda: log.append("started"))
    async with agent:
        assert log[-1] == "started"
        assert agent.started

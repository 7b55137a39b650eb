"""Status aggregation (logical AND), push and pull reporting, probe timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping

import pytest

from sidecar.health.statuscheck import (
    PluginState,
    StatusCheck,
    StatusCheckConfig,
    StatusPublisher,
    aggregate,
)
from sidecar.health.statuscheck import publisher as publisher_module
from sidecar.kvstore.api import KVUnavailableError
from tests._wait import until

OK, INIT, ERROR = PluginState.OK, PluginState.INIT, PluginState.ERROR


@pytest.mark.parametrize(("states", "started", "expected"), [
    ([], False, INIT),
    ([], True, OK),
    ([OK, OK], True, OK),
    ([OK, INIT], True, INIT),
    ([OK, ERROR, INIT], True, ERROR),
    ([OK, OK], False, INIT),
    ([ERROR], False, ERROR),
])
def test_aggregation_is_a_logical_and(
    states: list[PluginState], started: bool, expected: PluginState
) -> None:
    assert aggregate(states, started) is expected


def test_last_change_wins_is_not_how_it_aggregates() -> None:
    check = StatusCheck()
    check.mark_started()
    check.report_state_change("a", ERROR, "down")
    check.report_state_change("b", OK)  # cn-infra drifted to "last change wins"
    assert check.agent_status().state is ERROR


def test_non_fatal_error_keeps_liveness_but_not_readiness() -> None:
    check = StatusCheck(StatusCheckConfig(non_fatal=["kafka"]))
    check.mark_started()
    check.report_state_change("kafka", ERROR, "no broker")
    status = check.agent_status()
    assert status.live and not status.ready
    check.report_state_change("core", ERROR, "broken")
    assert not check.agent_status().live


def test_operator_list_wins_over_the_plugin() -> None:
    check = StatusCheck(StatusCheckConfig(non_fatal=["etcd"]))
    check.register("etcd", fatal=True)
    check.register("prog", fatal=False)
    assert not check.agent_status().plugins["etcd"].fatal
    assert not check.agent_status().plugins["prog"].fatal


def test_only_real_changes_notify_listeners_and_move_last_change() -> None:
    now = [1000.0]
    check = StatusCheck(clock=lambda: now[0])
    calls: list[int] = []
    check.add_listener(lambda: calls.append(1))
    check.report_state_change("p", ERROR, "x")
    first = len(calls)
    now[0] = 1010.0
    check.report_state_change("p", ERROR, "x")
    assert len(calls) == first
    status = check.agent_status().plugins["p"]
    assert (status.last_change, status.last_update) == (1000, 1010)
    check.report_state_change("p", ERROR, "y")
    assert len(calls) == first + 1
    assert check.agent_status().plugins["p"].error == "y"


def test_json_shape_matches_the_seed() -> None:
    check = StatusCheck(clock=lambda: 1497617981.5)
    check.report_state_change("GOVPP", ERROR, "VPP disconnected")
    data = check.agent_status().to_dict()
    assert set(data) == {"build_version", "build_date", "commit_hash", "state", "start_time",
                         "last_change", "last_update", "plugins"}
    assert data["plugins"]["GOVPP"] == {"state": 2, "last_change": 1497617981,
                                        "last_update": 1497617981, "error": "VPP disconnected"}
    check.report_state_change("GOVPP", OK)
    assert "error" not in check.agent_status().to_dict()["plugins"]["GOVPP"]


async def test_pull_probes_run_concurrently_and_a_hanging_one_times_out() -> None:
    check = StatusCheck(StatusCheckConfig(probe_timeout=0.3))
    release = asyncio.Event()

    async def hangs() -> None:
        await release.wait()

    async def fine() -> None:
        return None

    async def fails() -> None:
        raise ConnectionError("backend refused")

    async def degraded() -> tuple[PluginState, str]:
        return ERROR, "queue full"

    # Each of these answers only once the other has started: run one after the other,
    # the first would time out.
    left_started, right_started = asyncio.Event(), asyncio.Event()

    async def left() -> None:
        left_started.set()
        await right_started.wait()

    async def right() -> None:
        right_started.set()
        await left_started.wait()

    for name, probe in [("hangs", hangs), ("fine", fine), ("fails", fails),
                        ("degraded", degraded), ("left", left), ("right", right)]:
        check.register(name, probe)
    # The round ends although "hangs" never answers (without the 0.3 s probe timeout it
    # would wait for ever), and it cut "hangs" off at that timeout (the error says so).
    async with asyncio.timeout(10):
        await check.probe_all()
    plugins = check.agent_status().plugins
    assert plugins["hangs"].state is ERROR
    assert plugins["hangs"].error == "probe did not answer within 0.3s"
    assert plugins["fine"].state is OK
    assert (plugins["fails"].state, plugins["fails"].error) == (ERROR, "backend refused")
    assert (plugins["degraded"].state, plugins["degraded"].error) == (ERROR, "queue full")
    assert plugins["left"].state is OK and plugins["right"].state is OK  # concurrently
    release.set()
    await check.close()


async def test_probe_that_swallows_cancellation_does_not_stall_rounds() -> None:
    check = StatusCheck(StatusCheckConfig(probe_timeout=0.1))
    stop = asyncio.Event()

    async def stubborn() -> None:
        while not stop.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    check.register("stubborn", stubborn)
    await check.probe_all()
    async with asyncio.timeout(10):  # the second round is not blocked by the first's probe
        await check.probe_all()
    assert "still running" in (check.agent_status().plugins["stubborn"].error or "")
    stop.set()
    await check.close()
    await asyncio.sleep(0)


async def test_probe_loop_runs_after_init_and_stops_on_close() -> None:
    check = StatusCheck(StatusCheckConfig(probe_interval=0.05))
    calls = 0

    async def probe() -> None:
        nonlocal calls
        calls += 1

    check.register("p", probe)
    await check.after_init()
    async with asyncio.timeout(2):
        while calls < 3:
            await asyncio.sleep(0.01)
    await check.close()
    assert check.agent_status().plugins["p"].state is OK


def test_unregister_removes_a_plugin() -> None:
    check = StatusCheck()
    check.mark_started()
    check.report_state_change("prog", ERROR, "crashed")
    check.unregister("prog")
    assert "prog" not in check.agent_status().plugins
    assert check.agent_status().state is OK


class _FlakyStore:
    """A LeasedWriter that is down until ``open_session()``."""

    def __init__(self) -> None:
        self.up = False
        self.listeners: list[Callable[[], None]] = []
        self.commits: list[dict[str, bytes]] = []

    async def commit(self, puts: Mapping[str, bytes], deletes: Collection[str] = ()) -> None:
        if not self.up:
            raise KVUnavailableError("down")
        self.commits.append(dict(puts))

    def add_session_listener(self, callback: Callable[[], None]) -> None:
        self.listeners.append(callback)

    def open_session(self) -> None:
        self.up = True
        for listener in self.listeners:
            listener()


async def test_a_new_session_ends_the_publishers_retry_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A retry delay far longer than the test: only the session can wake the publisher.
    monkeypatch.setattr(publisher_module, "_RETRY_MIN", 60.0)
    check = StatusCheck()
    store = _FlakyStore()
    publisher = StatusPublisher(check, store, lambda: "/vnf-agent/t/", publish_interval=600)
    await publisher.init()
    await publisher.after_init()
    try:
        await until(lambda: publisher.errors, 2, "a failed first publish")
        check.report_state_change("during-outage", ERROR, "written later")
        store.open_session()
        commit = await until(lambda: store.commits and store.commits[-1], 2,
                             "everything published once the session is open")
        assert set(commit) == {"/vnf-agent/t/check/status/v1/agent",
                               "/vnf-agent/t/check/status/v1/plugin/during-outage"}
    finally:
        await publisher.close()

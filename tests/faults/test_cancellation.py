"""Stopping right after a status change: found by SIGTERM during start-up (test_startup).

Python 3.11's ``asyncio.wait_for`` drops a cancellation that arrives while the
awaited event is being set, so a loop waiting that way never ended and the
agent's stop sat out its whole stop timeout.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sidecar.agent.tasks import cancel_and_wait
from sidecar.health.statuscheck import PluginState, StatusCheck, StatusPublisher
from sidecar.kvstore.etcd import EtcdConfig, EtcdPlugin
from sidecar.servicelabel import ServiceLabelPlugin
from tests.servers.etcd import EtcdServer


def awaiting(task_name: str) -> str | None:
    """What the named task is suspended in: the innermost coroutine of its await chain."""
    task = next((t for t in asyncio.all_tasks() if t.get_name() == task_name), None)
    if task is None or task.done():
        return None
    innermost = None
    coro: Any = task.get_coro()
    while coro is not None and hasattr(coro, "cr_code"):
        innermost, coro = coro.cr_code.co_qualname, coro.cr_await
    return innermost


async def test_the_publisher_stops_at_once_right_after_a_change(
        etcd_server: EtcdServer) -> None:
    statuscheck = StatusCheck()
    etcd = EtcdPlugin(EtcdConfig(endpoints=[etcd_server.endpoint]), statuscheck)
    publisher = StatusPublisher(statuscheck, etcd,
                                ServiceLabelPlugin("faults-cancel").agent_prefix)
    for plugin in (statuscheck, etcd, publisher):
        await plugin.init()
    for plugin in (statuscheck, etcd, publisher):
        await plugin.after_init()
    try:
        async with asyncio.timeout(10):
            # The first full publish is done and the loop waits for the next change.
            while not (publisher.commits >= 1 and awaiting("status-publisher") == "Event.wait"):
                await asyncio.sleep(0.02)
        statuscheck.report_state_change("demo", PluginState.ERROR, "going away")
        # The bug never ended the loop; a working close takes milliseconds.
        async with asyncio.timeout(10):
            await publisher.close()
    finally:
        for plugin in (publisher, etcd, statuscheck):
            await plugin.close()


async def test_cancel_and_wait_passes_on_a_cancellation_of_its_caller() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await release.wait()  # unwinding takes a while
            raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await cancel_and_wait(task)
    release.set()
    await cancel_and_wait(task)
    assert task.cancelled()

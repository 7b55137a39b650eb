"""The log manager over REST, in-process: list, set, ttl, reset, errors, and logs.conf at start."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.agent import Agent
from sidecar.builder import Options, Sidecar, build
from tests._wait import until


@dataclass
class Running:
    sidecar: Sidecar
    agent: Agent
    url: str
    client: aiohttp.ClientSession

    async def call(self, method: str, path: str) -> tuple[int, Any]:
        async with self.client.request(method, self.url + path) as reply:
            return reply.status, await reply.json()

    async def levels(self) -> dict[str, dict[str, Any]]:
        status, rows = await self.call("GET", "/log/list")
        assert status == 200
        return {row["logger"]: row for row in rows}


async def start(config_dir: Path, env: dict[str, str] | None = None,
                logs_conf: str | None = None) -> Running:
    (config_dir / "http.conf").write_text("endpoint: 127.0.0.1:0\n")
    if logs_conf is not None:
        (config_dir / "logs.conf").write_text(logs_conf)
    sidecar = build(Options(config_dir=str(config_dir), env=env or {}))
    agent = sidecar.agent()
    await agent.start()
    client = aiohttp.ClientSession()
    return Running(sidecar, agent, f"http://127.0.0.1:{sidecar.rest.port}", client)


@pytest.fixture
async def running(config_dir: Path) -> AsyncIterator[Running]:
    run = await start(config_dir)
    yield run
    await run.client.close()
    await run.agent.stop()


async def test_list_shows_every_logger_of_the_process(running: Running) -> None:
    user = logging.getLogger("userplugin.worker")  # a user plugin's logger, made at any time
    levels = await running.levels()
    assert {"root", "sidecar.agent", "sidecar.logmanager", "aiohttp.access",
            "userplugin.worker"} <= set(levels)
    assert levels["sidecar.agent"] == {"logger": "sidecar.agent", "level": "info"}
    _, rows = await running.call("GET", "/log/list")
    assert [r["logger"] for r in rows] == sorted(r["logger"] for r in rows)
    assert user.getEffectiveLevel() == logging.INFO


async def test_put_changes_the_level_a_logger_really_uses(running: Running) -> None:
    logger = logging.getLogger("userplugin.worker")
    assert not logger.isEnabledFor(logging.DEBUG)
    status, body = await running.call("PUT", "/log/userplugin.worker/debug")
    assert (status, body) == (200, {"logger": "userplugin.worker", "level": "debug"})
    assert logger.isEnabledFor(logging.DEBUG)
    assert (await running.levels())["userplugin.worker"]["level"] == "debug"
    status, body = await running.call("PUT", "/log/userplugin.worker/TRACE")
    assert body["level"] == "trace" and logger.isEnabledFor(5)


async def test_a_parent_logger_sets_its_whole_subtree(running: Running) -> None:
    logging.getLogger("userplugin.a.b")
    status, _ = await running.call("PUT", "/log/userplugin/error")
    assert status == 200
    levels = await running.levels()
    assert levels["userplugin.a.b"]["level"] == "error"
    assert not logging.getLogger("userplugin.a.b").isEnabledFor(logging.WARNING)


async def test_root_is_the_default_level(running: Running) -> None:
    status, body = await running.call("PUT", "/log/root/warning")
    assert (status, body["level"]) == (200, "warning")
    assert logging.getLogger().level == logging.WARNING
    assert (await running.levels())["sidecar.agent"]["level"] == "warning"


async def test_bad_level_is_400_naming_the_valid_levels(running: Running) -> None:
    status, body = await running.call("PUT", "/log/sidecar.agent/verbose")
    assert status == 400
    assert "unknown log level 'verbose'" in body["error"]
    assert body["valid_levels"] == ["trace", "debug", "info", "warn", "warning", "error",
                                    "fatal", "critical", "panic"]
    assert logging.getLogger("sidecar.agent").getEffectiveLevel() == logging.INFO


async def test_unknown_logger_is_404_and_not_created(running: Running) -> None:
    status, body = await running.call("PUT", "/log/sidecar.agnet/debug")
    assert status == 404
    assert body["error"].startswith("unknown logger 'sidecar.agnet'; did you mean")
    assert "sidecar.agent" in body["error"]
    assert "sidecar.agnet" not in logging.root.manager.loggerDict
    assert (await running.call("DELETE", "/log/no.such.logger"))[0] == 404


async def test_ttl_reverts_the_level_and_list_shows_the_expiry(running: Running) -> None:
    logger = logging.getLogger("userplugin.worker")
    await running.call("PUT", "/log/userplugin.worker/warning")
    before = time.time()
    # Long enough that the list below still shows it on a busy machine.
    status, body = await running.call("PUT", "/log/userplugin.worker/debug?ttl=2s")
    assert status == 200
    assert before + 1.9 < body["expires"] < time.time() + 2.1
    row = (await running.levels())["userplugin.worker"]
    assert row["level"] == "debug" and row["expires"] == body["expires"]

    await until(lambda: logger.level == logging.WARNING, 5, "level back to warning")
    row = (await running.levels())["userplugin.worker"]
    assert row == {"logger": "userplugin.worker", "level": "warning"}


async def test_a_second_ttl_still_returns_to_the_level_from_before_both(running: Running) -> None:
    logger = logging.getLogger("userplugin.worker")
    await running.call("PUT", "/log/userplugin.worker/error")
    await running.call("PUT", "/log/userplugin.worker/info?ttl=10m")
    await running.call("PUT", "/log/userplugin.worker/debug?ttl=200ms")
    await until(lambda: logger.level == logging.ERROR, 5, "level back to error")


async def test_a_put_without_ttl_cancels_a_pending_revert(running: Running) -> None:
    logger = logging.getLogger("userplugin.worker")
    # The ttl outlasts the gap to the next PUT even on a busy machine: the revert is
    # still pending when that PUT cancels it.
    await running.call("PUT", "/log/userplugin.worker/debug?ttl=1s")
    await running.call("PUT", "/log/userplugin.worker/warning")
    assert "expires" not in (await running.levels())["userplugin.worker"]
    await asyncio.sleep(1.3)  # past the cancelled expiry: nothing may change
    assert logger.level == logging.WARNING


@pytest.mark.parametrize(("ttl", "reason"), [
    ("soon", "ttl: expected a duration such as 500ms"),
    ("0s", "ttl: must be greater than zero"),
    ("-5s", "ttl: expected a duration"),
])
async def test_bad_ttl_is_400(running: Running, ttl: str, reason: str) -> None:
    status, body = await running.call("PUT", f"/log/sidecar.agent/debug?ttl={ttl}")
    assert status == 400
    assert reason in body["error"]
    assert logging.getLogger("sidecar.agent").level == logging.NOTSET


async def test_delete_returns_a_logger_to_its_configured_level(config_dir: Path) -> None:
    logging.getLogger("userplugin.db")
    run = await start(config_dir, logs_conf="default-level: info\nloggers:\n"
                                            "  - {name: userplugin.db, level: error}\n")
    try:
        await run.call("PUT", "/log/userplugin.db/debug?ttl=10m")
        status, body = await run.call("DELETE", "/log/userplugin.db")
        assert (status, body) == (200, {"logger": "userplugin.db", "level": "error"})
        await run.call("PUT", "/log/sidecar.agent/debug")
        status, body = await run.call("DELETE", "/log/sidecar.agent")
        assert body["level"] == "info"  # not in logs.conf: inherits the default again
        assert logging.getLogger("sidecar.agent").level == logging.NOTSET
    finally:
        await run.client.close()
        await run.agent.stop()


async def test_logs_conf_levels_hold_at_start_and_initial_loglvl_beats_default(
    config_dir: Path,
) -> None:
    root_before = logging.getLogger().level
    run = await start(config_dir, env={"INITIAL_LOGLVL": "warn"},
                      logs_conf="default-level: debug\nloggers:\n"
                                "  - {name: sidecar.statuscheck, level: error}\n"
                                "  - {name: not.yet.imported, level: trace}\n")
    try:
        levels = await run.levels()
        assert levels["root"]["level"] == "warning"  # INITIAL_LOGLVL, not default-level
        assert levels["sidecar.agent"]["level"] == "warning"
        assert levels["sidecar.statuscheck"]["level"] == "error"
        # A library imported later finds its level already set.
        assert logging.getLogger("not.yet.imported").isEnabledFor(5)
    finally:
        await run.client.close()
        await run.agent.stop()
    # Closing the log manager gives the process its levels back.
    assert logging.getLogger().level == root_before
    assert logging.getLogger("sidecar.statuscheck").level == logging.NOTSET


async def test_changes_made_at_run_time_are_undone_at_close(config_dir: Path) -> None:
    run = await start(config_dir)
    try:
        await run.call("PUT", "/log/userplugin.worker/debug?ttl=1h")
    finally:
        await run.client.close()
        await run.agent.stop()
    assert logging.getLogger("userplugin.worker").level == logging.NOTSET

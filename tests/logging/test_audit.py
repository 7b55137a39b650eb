"""The audit trail: every admin change is an info line naming the caller and whether a
token let it in, never the token; at info even when the default level is quieter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sidecar.logging.context import current_plugin
from sidecar.rest import HTTPConfig, RestPlugin
from tests._wait import wait_until
from tests.logging.test_log_rest_process import call
from tests.servers._util import free_port
from tests.sidecar_proc import SidecarProcess

TOKEN = "audit-t0ken-never-logged"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def audit_lines(proc: SidecarProcess) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in proc.output().splitlines()]
    return [r for r in rows if r["logger"] == "sidecar.audit"]


def test_admin_actions_leave_an_audit_trail(config_dir: Path,
                                            sidecars: list[SidecarProcess]) -> None:
    (config_dir / "http.conf").write_text(
        f"admin-allow: [127.0.0.1/32]\nadmin-token: {TOKEN}\n")
    (config_dir / "supervisor.conf").write_text(
        "programs: [{name: idle, executable-path: /bin/sleep, executable-args: ['600']}]\n")
    # Only errors by default: the audit trail is kept at info all the same.
    proc = SidecarProcess(config_dir, "--log-format", "json", "--log-level", "error")
    sidecars.append(proc)
    proc.start()

    local, remote = "127.0.0.1", "127.0.0.2"  # remote: outside the allow-list
    assert call(proc, "PUT", "/log/sidecar.agent/debug?ttl=2s", source=local)[0] == 200
    assert call(proc, "PUT", "/log/sidecar.rest/warn", source=remote, headers=BEARER)[0] == 200
    assert call(proc, "DELETE", "/log/sidecar.rest", source=remote, headers=BEARER)[0] == 200
    for action in ("stop", "start", "restart"):
        status, _ = call(proc, "POST", f"/supervisor/programs/idle/{action}", source=remote,
                         headers=BEARER)
        assert status == 200, action
    assert call(proc, "POST", "/supervisor/programs/nope/stop", source=local)[0] == 404
    # Refused: no audit line (the REST server's rate-limited warning says it).
    assert call(proc, "PUT", "/log/sidecar.agent/error", source=remote)[0] == 401
    assert call(proc, "POST", "/supervisor/programs/idle/stop", source=remote,
                headers={"Authorization": "Bearer wrong"})[0] == 403
    wait_until(lambda: any(r["event"] == "log.level.expired" for r in audit_lines(proc)), 15,
               "the ttl's expiry on record")
    assert proc.stop() == 0

    assert TOKEN not in proc.output()
    lines = audit_lines(proc)
    assert {r["level"] for r in lines} == {"info"}
    # The expiry comes by itself, whenever its timer fires: the requests' lines in order.
    (expired,) = [r for r in lines if r["event"] == "log.level.expired"]
    lines.remove(expired)
    got = [(r["event"], r.get("caller"), r.get("token")) for r in lines]
    assert got == [
        ("log.level.set", local, False),
        ("log.level.set", remote, True),
        ("log.level.reset", remote, True),
        ("program.stop", remote, True),
        ("program.start", remote, True),
        ("program.restart", remote, True),
        ("program.stop", local, False),
    ], got
    first, second, reset, stop, _, restart, missing = lines
    assert (first["target_logger"], first["target_level"], first["ttl"]) == \
        ("sidecar.agent", "debug", 2.0)
    assert first["message"] == ("log level of sidecar.agent set to debug for 2s "
                                "by 127.0.0.1 (allow-list)")
    assert (second["target_logger"], second["target_level"]) == ("sidecar.rest", "warning")
    assert "ttl" not in second
    assert (reset["target_logger"], reset["target_level"]) == ("sidecar.rest", "inherited")
    assert (stop["program"], stop["action"], stop["status"], stop["result"]) == \
        ("idle", "stop", 200, "changed")
    assert stop["message"] == "program idle: stop (changed) by 127.0.0.2 (token)"
    assert restart["result"] == "changed"
    assert (missing["program"], missing["status"], missing["result"]) == \
        ("nope", 404, "no such program")
    assert (expired["target_logger"], expired["target_level"]) == ("sidecar.agent", "inherited")
    assert "caller" not in expired and "token" not in expired
    assert {r["plugin"] for r in [*lines, expired]} == {"logmanager", "supervisor"}


@pytest.fixture
async def rest() -> AsyncIterator[tuple[RestPlugin, str]]:
    plugin = RestPlugin(HTTPConfig(endpoint=f"127.0.0.1:{free_port()}",
                                   admin_allow=["127.0.0.1/32"], admin_token=TOKEN))

    async def change(request: web.Request) -> web.Response:
        return web.json_response({"plugin": current_plugin.get()}, status=201)

    token = current_plugin.set("gadget")  # as the agent runs a plugin's init
    try:
        plugin.register("POST", "/gadget/{name}", change, admin=True)
        plugin.register("GET", "/gadget", change, admin=True)
    finally:
        current_plugin.reset(token)
    await plugin.init()
    await plugin.after_init()
    yield plugin, f"http://127.0.0.1:{plugin.port}"
    await plugin.close()


async def test_an_admin_change_without_its_own_audit_line_gets_one(
        rest: tuple[RestPlugin, str], caplog: pytest.LogCaptureFixture) -> None:
    _, url = rest
    caplog.set_level("INFO", logger="sidecar.audit")
    outside = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=outside) as client:
        async with client.post(url + "/gadget/a%2Fb", headers=BEARER) as reply:
            assert reply.status == 201
            # The handler runs as the plugin that registered it, not as the server.
            assert await reply.json() == {"plugin": "gadget"}
        async with client.get(url + "/gadget", headers=BEARER) as reply:
            assert reply.status == 201  # a read: no audit line
    (record,) = [r for r in caplog.records if r.name == "sidecar.audit"]
    assert record.levelname == "INFO"
    fields = {key: getattr(record, key) for key in
              ("event", "caller", "token", "method", "path", "status")}
    assert fields == {"event": "admin.request", "caller": "127.0.0.2", "token": True,
                      "method": "POST", "path": "/gadget/a%2Fb", "status": 201}
    assert record.getMessage() == "POST /gadget/a%2Fb answered 201 by 127.0.0.2 (token)"

"""Status published to a real etcd: keys, changes, refresh, outages and lease expiry."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar import Agent
from sidecar.builder import Options, Sidecar, build
from sidecar.health.statuscheck import PluginState
from sidecar.kvstore.api import KVUnavailableError
from sidecar.kvstore.etcd import EtcdPlugin
from tests._wait import until
from tests.servers._util import free_port
from tests.servers.etcd import EtcdServer
from tests.servers.tls import make_pki
from tests.sidecar_proc import SidecarProcess

PREFIX = "/vnf-agent/{label}/check/status/v1/"


def write_config(directory: Path, etcd: EtcdServer, *, lease_ttl: str = "5s",
                 publish_interval: str = "10s") -> Path:
    (directory / "etcd.conf").write_text(
        f"endpoints: ['{etcd.endpoint}']\ndial-timeout: 500ms\noperation-timeout: 1s\n"
        f"lease-ttl: {lease_ttl}\nreconnect-interval: 500ms\n")
    (directory / "statuscheck.conf").write_text(
        f"publish-interval: {publish_interval}\nprobe-interval: 200ms\n")
    (directory / "http.conf").write_text(f"endpoint: 127.0.0.1:{free_port()}\n")
    return directory


async def etcd_get(etcd: EtcdServer, key: str) -> dict[str, Any] | None:
    value = await asyncio.to_thread(etcd.get, key)
    return json.loads(value) if value else None


class Running:
    def __init__(self, sidecar: Sidecar, agent: Agent, label: str) -> None:
        self.sidecar = sidecar
        self.agent = agent
        self.label = label
        self.prefix = PREFIX.format(label=label)
        self.url = f"http://127.0.0.1:{sidecar.rest.port}"


#: A refresh too far off to happen during a test: whatever reaches etcd was pushed by
#: the change itself.
NO_REFRESH = {"publish_interval": "10m"}


@pytest.fixture
async def running(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    """A sidecar in this process. Indirect parameter: the etcd fixture's name, or a dict
    with it (``etcd``) and the ``publish_interval`` (500ms by default)."""
    param = getattr(request, "param", {})
    if isinstance(param, str):
        param = {"etcd": param}
    etcd: EtcdServer = request.getfixturevalue(param.get("etcd", "etcd_server"))
    label = f"t{free_port()}"
    options = Options(config_dir=str(write_config(
                          tmp_path, etcd, lease_ttl="5s",
                          publish_interval=param.get("publish_interval", "500ms"))),
                      microservice_label=label, env={})
    sidecar = build(options)
    agent = sidecar.agent()
    await agent.start()
    yield Running(sidecar, agent, label)
    await agent.stop()


@pytest.mark.parametrize("running", [NO_REFRESH], indirect=True)
async def test_agent_and_plugin_keys_follow_reports(
    running: Running, etcd_server: EtcdServer
) -> None:
    statuscheck = running.sidecar.statuscheck
    agent_key = running.prefix + "agent"
    agent = await until(lambda: etcd_get(etcd_server, agent_key), 5, "agent key")
    assert agent["state"] == 1
    assert set(agent) == {"build_version", "build_date", "commit_hash", "state", "start_time",
                          "last_change", "last_update"}
    etcd_key = await until(lambda: etcd_get(etcd_server, running.prefix + "plugin/etcd"), 5,
                           "etcd plugin key")
    assert etcd_key["state"] == 1

    async with aiohttp.ClientSession() as client:
        statuscheck.report_state_change("GOVPP", PluginState.ERROR, "VPP disconnected")
        plugin_key = running.prefix + "plugin/GOVPP"
        # With no refresh due for 10 minutes, only the change itself can have written it.
        value = await until(lambda: etcd_get(etcd_server, plugin_key), 5, "plugin key")
        assert value["state"] == 2
        assert value["error"] == "VPP disconnected"
        async with client.get(running.url + "/readiness") as reply:
            assert reply.status == 503
        async with client.get(running.url + "/liveness") as reply:
            assert reply.status == 503  # GOVPP is fatal by default
            assert (await reply.json())["plugins"]["GOVPP"]["error"] == "VPP disconnected"
        assert (await etcd_get(etcd_server, agent_key) or {}).get("state") == 2

        statuscheck.report_state_change("GOVPP", PluginState.OK)

        async def back_to_ok() -> bool:
            value = await etcd_get(etcd_server, plugin_key)
            return bool(value and value["state"] == 1 and "error" not in value)

        await until(back_to_ok, 5, "OK published")
        async with client.get(running.url + "/readiness") as reply:
            assert reply.status == 200


@pytest.mark.parametrize("running", [NO_REFRESH], indirect=True)
async def test_unchanged_reports_write_nothing(running: Running, etcd_server: EtcdServer) -> None:
    statuscheck = running.sidecar.statuscheck
    key = running.prefix + "plugin/steady"
    statuscheck.report_state_change("steady", PluginState.OK)
    await until(lambda: etcd_get(etcd_server, key), 5, "steady key")
    publisher = next(p for p in running.sidecar.plugins if p.name == "status-publisher")
    before = publisher.commits  # type: ignore[attr-defined]
    for _ in range(50):
        statuscheck.report_state_change("steady", PluginState.OK)
    # One turn of the loop: a publisher woken by the repeats runs now (its wake-up is
    # queued ahead of us) and, were it to write them, would be inside that commit...
    await asyncio.sleep(0)
    # ...so the next change would need a commit of its own: once etcd has it, exactly one
    # commit since the repeats says that they wrote nothing.
    statuscheck.register("sentinel", fatal=False)
    statuscheck.report_state_change("sentinel", PluginState.ERROR, "after the repeats")
    await until(lambda: etcd_get(etcd_server, running.prefix + "plugin/sentinel"), 5,
                "the change after the repeats")
    assert publisher.commits == before + 1  # type: ignore[attr-defined]


async def test_refresh_rewrites_everything(running: Running, etcd_server: EtcdServer) -> None:
    statuscheck = running.sidecar.statuscheck
    key = running.prefix + "plugin/steady"
    statuscheck.report_state_change("steady", PluginState.OK)
    first = await until(lambda: etcd_get(etcd_server, key), 5, "steady key")

    async def refreshed() -> bool:
        value = await etcd_get(etcd_server, key)
        return bool(value and value["last_update"] > first["last_update"])

    await until(refreshed, 5, "last_update refreshed by the periodic re-put")


async def test_removed_plugin_key_is_deleted(running: Running, etcd_server: EtcdServer) -> None:
    statuscheck = running.sidecar.statuscheck
    key = running.prefix + "plugin/program-x"
    statuscheck.report_state_change("program-x", PluginState.OK)
    await until(lambda: etcd_get(etcd_server, key), 5, "program key")
    statuscheck.unregister("program-x")

    async def gone() -> bool:
        return await asyncio.to_thread(etcd_server.get, key) is None

    await until(gone, 5, "key deleted")


@pytest.mark.parametrize("running", ["own_etcd"], indirect=True)
async def test_etcd_outage_never_slows_probes_and_publishing_resumes(
    running: Running, own_etcd: EtcdServer
) -> None:
    statuscheck = running.sidecar.statuscheck
    agent_key = running.prefix + "agent"
    await until(lambda: etcd_get(own_etcd, agent_key), 5, "agent key before the outage")
    own_etcd.stop()

    async with aiohttp.ClientSession() as client:

        async def etcd_error() -> int | None:
            async with client.get(running.url + "/readiness") as reply:
                body = await reply.json()
                return reply.status if body["plugins"]["etcd"]["state"] == 2 else None

        # etcd only reports: its outage is in the status, not in the probes' answers.
        assert await until(etcd_error, 10, "etcd plugin ERROR") == 200
        # A plugin of the pod's own that fails meanwhile does fail readiness.
        statuscheck.register("during-outage", fatal=False)
        statuscheck.report_state_change("during-outage", PluginState.ERROR, "written later")
        slowest = 0.0
        for _ in range(100):
            for path in ("/liveness", "/readiness"):
                begin = time.perf_counter()
                async with client.get(running.url + path) as reply:
                    await reply.read()
                    expected = 200 if path == "/liveness" else 503
                    assert reply.status == expected  # during-outage: readiness only
                slowest = max(slowest, time.perf_counter() - begin)
        # A probe that waited for etcd would take at least its 500 ms dial timeout.
        assert slowest < 0.5, f"slowest probe {slowest:.3f}s during the outage"

        await asyncio.to_thread(own_etcd.start)
        key = running.prefix + "plugin/during-outage"
        value = await until(lambda: etcd_get(own_etcd, key), 15, "key written after restart")
        assert value["error"] == "written later"
        statuscheck.report_state_change("during-outage", PluginState.OK)

        async def ready() -> bool:
            async with client.get(running.url + "/readiness") as reply:
                return reply.status == 200

        await until(ready, 10, "readiness back to 200")


@pytest.mark.parametrize("running", ["own_etcd"], indirect=True)
async def test_a_write_cut_short_by_a_reconnect_fails_and_publishing_goes_on(
    running: Running, own_etcd: EtcdServer
) -> None:
    # The etcd plugin closes its client when it moves to another endpoint; gRPC then
    # cancels the calls in flight. That must be a failed write, never a cancellation
    # that silently ends the publisher (seen with a cluster member partitioned away).
    etcd = running.sidecar.etcd
    assert isinstance(etcd, EtcdPlugin)
    agent_key = running.prefix + "agent"
    await until(lambda: etcd_get(own_etcd, agent_key), 5, "agent key")
    own_etcd.freeze()
    try:
        write = asyncio.create_task(etcd.commit({running.prefix + "probe": b"{}"}))
        await asyncio.sleep(0.2)  # the request is on its way to the frozen etcd
        await etcd.client.close()
        with pytest.raises(KVUnavailableError, match="connection was closed"):
            await write
    finally:
        own_etcd.thaw()
    running.sidecar.statuscheck.register("after-the-cut", fatal=False)
    running.sidecar.statuscheck.report_state_change("after-the-cut", PluginState.ERROR, "x")
    value = await until(lambda: etcd_get(own_etcd, running.prefix + "plugin/after-the-cut"),
                        15, "a change published after the cut-short write")
    assert value["state"] == 2


@pytest.mark.parametrize("running", ["own_etcd"], indirect=True)
async def test_keys_come_back_when_etcd_loses_its_data(
    running: Running, own_etcd: EtcdServer
) -> None:
    agent_key = running.prefix + "agent"
    await until(lambda: etcd_get(own_etcd, agent_key), 5, "agent key")
    own_etcd.kill()
    shutil.rmtree(Path(own_etcd.data_dir) / "data")
    await asyncio.to_thread(own_etcd.start)
    value = await until(lambda: etcd_get(own_etcd, agent_key), 15, "agent key re-written")
    assert value["state"] in (1, 2)


def test_keys_expire_with_the_lease_after_sigkill(
    tmp_path: Path, own_etcd: EtcdServer, sidecars: list[SidecarProcess]
) -> None:
    write_config(tmp_path, own_etcd, lease_ttl="2s")
    proc = SidecarProcess(tmp_path, env={"MICROSERVICE_LABEL": "doomed"})
    sidecars.append(proc)
    proc.start()
    key = PREFIX.format(label="doomed") + "agent"
    deadline = time.monotonic() + 10
    while own_etcd.get(key) is None:
        assert time.monotonic() < deadline, "agent key never written"
        time.sleep(0.05)
    proc.kill()
    killed = time.monotonic()
    while own_etcd.get(key) is not None:
        assert time.monotonic() - killed < 8, "key outlived the 2s lease"
        time.sleep(0.1)
    assert own_etcd.get(PREFIX.format(label="doomed") + "plugin/etcd") is None


def test_graceful_stop_revokes_the_lease_at_once(
    tmp_path: Path, own_etcd: EtcdServer, sidecars: list[SidecarProcess]
) -> None:
    write_config(tmp_path, own_etcd, lease_ttl="30s")
    proc = SidecarProcess(tmp_path, env={"MICROSERVICE_LABEL": "leaving"})
    sidecars.append(proc)
    proc.start()
    key = PREFIX.format(label="leaving") + "agent"
    deadline = time.monotonic() + 10
    while own_etcd.get(key) is None:
        assert time.monotonic() < deadline, "agent key never written"
        time.sleep(0.05)
    assert proc.stop() == 0
    assert own_etcd.get(key) is None


def test_status_over_tls_with_client_certificates(
    tmp_path: Path, sidecars: list[SidecarProcess]
) -> None:
    pki = make_pki(tmp_path / "pki")
    server = EtcdServer(tls=pki).start()
    try:
        config = tmp_path / "config"
        config.mkdir()
        write_config(config, server)
        with (config / "etcd.conf").open("a") as conf:
            conf.write(f"tls:\n  ca-file: {pki.ca}\n  cert-file: {pki.client_cert}\n"
                       f"  key-file: {pki.client_key}\n")
        proc = SidecarProcess(config, env={"MICROSERVICE_LABEL": "secure"})
        sidecars.append(proc)
        proc.start()
        key = PREFIX.format(label="secure") + "plugin/etcd"
        deadline = time.monotonic() + 10
        while not server.get(key):
            assert time.monotonic() < deadline, f"no key over TLS:\n{proc.output()}"
            time.sleep(0.05)
        assert json.loads(server.get(key) or "{}")["state"] == 1
    finally:
        server.close()


def test_plain_text_client_against_tls_etcd_reports_error(
    tmp_path: Path, sidecars: list[SidecarProcess]
) -> None:
    server = EtcdServer(tls=make_pki(tmp_path / "pki")).start()
    try:
        config = tmp_path / "config"
        config.mkdir()
        write_config(config, server)
        proc = SidecarProcess(config, env={"MICROSERVICE_LABEL": "plain"})
        sidecars.append(proc)
        proc.start()
        deadline = time.monotonic() + 10
        while True:
            status, body = proc.get("/readiness")
            if body["plugins"].get("etcd", {}).get("state") == 2:
                break
            assert time.monotonic() < deadline, "etcd plugin never reported ERROR"
            time.sleep(0.05)
        assert status == 200  # etcd only reports: no probe fails for it
        assert body["state"] == 2
        assert "etcd unreachable at" in body["plugins"]["etcd"]["error"]
        assert proc.get("/liveness")[0] == 200
    finally:
        server.close()

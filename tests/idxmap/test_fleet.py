"""The fleet view: several real sidecars publish to one etcd, one of them serves ``/fleet``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sidecar.builder import Options, build, example_config_dir
from sidecar.config import ConfigError
from sidecar.fleet import parse_state
from sidecar.health.statuscheck import PluginState
from tests._wait import wait_until
from tests.servers.etcd import EtcdServer
from tests.sidecar_proc import SidecarProcess

AGENT_KEY = "/vnf-agent/{}/check/status/v1/agent"


def config(directory: Path, etcd: EtcdServer, *, fleet: bool = False) -> Path:
    directory.mkdir()
    (directory / "etcd.conf").write_text(
        f"endpoints: ['{etcd.endpoint}']\ndial-timeout: 500ms\noperation-timeout: 1s\n"
        "lease-ttl: 5s\nreconnect-interval: 500ms\n")
    (directory / "statuscheck.conf").write_text("publish-interval: 1s\nprobe-interval: 200ms\n")
    if fleet:
        (directory / "fleet.conf").write_text("enabled: true\n")
    return directory


def fake_agent(etcd: EtcdServer, label: str, state: PluginState) -> None:
    """An agent status as a sidecar publishes it (for an agent this test cannot break for real)."""
    doc = {"build_version": "0.0.1", "build_date": "", "commit_hash": "", "state": int(state),
           "start_time": 1, "last_change": 2, "last_update": 3}
    etcd.etcdctl("put", AGENT_KEY.format(label), json.dumps(doc))


def labels(reply: tuple[int, Any]) -> list[str]:
    status, body = reply
    assert status == 200, body
    return [agent["label"] for agent in body["agents"]]


def test_fleet_lists_the_agents_of_one_etcd_by_state(
        own_etcd: EtcdServer, tmp_path: Path, sidecars: list[SidecarProcess]) -> None:
    viewer = SidecarProcess(config(tmp_path / "viewer", own_etcd, fleet=True),
                            "--microservice-label", "viewer")
    workers = [SidecarProcess(config(tmp_path / f"w{i}", own_etcd),
                              "--microservice-label", f"worker-{i}") for i in (1, 2)]
    for proc in (viewer, *workers):
        sidecars.append(proc)
        proc.start()
    fake_agent(own_etcd, "broken", PluginState.ERROR)
    fake_agent(own_etcd, "booting", PluginState.INIT)
    # Plugin keys and other data under /vnf-agent/ are not agents.
    own_etcd.etcdctl("put", "/vnf-agent/broken/check/status/v1/plugin/kafka",
                     '{"state":2,"last_change":2,"last_update":3,"error":"no broker"}')
    own_etcd.etcdctl("put", "/vnf-agent/broken/config/x", "not json")

    everyone = ["booting", "broken", "viewer", "worker-1", "worker-2"]
    wait_until(lambda: labels(viewer.get("/fleet")) == everyone, 20, "every agent in /fleet")

    def all_ok_but_fakes() -> bool:
        states: dict[str, int] = viewer.get("/fleet")[1]["states"]
        return states == {"INIT": 1, "OK": 3, "ERROR": 1}

    wait_until(all_ok_but_fakes, 20, "the real sidecars OK in the fleet view")

    status, body = viewer.get("/fleet?state=ERROR")
    assert status == 200
    assert body["count"] == 1 and body["synced"] is True
    [broken] = body["agents"]
    assert broken["label"] == "broken" and broken["state"] == 2
    assert broken["state_name"] == "ERROR"
    assert labels(viewer.get("/fleet?state=error")) == ["broken"]
    assert labels(viewer.get("/fleet?state=2")) == ["broken"]
    assert labels(viewer.get("/fleet?state=INIT,ERROR")) == ["booting", "broken"]
    assert labels(viewer.get("/fleet?state=0&state=1")) == ["booting", "viewer", "worker-1",
                                                              "worker-2"]

    status, body = viewer.get("/fleet?state=bogus")
    assert status == 400
    assert "'bogus'" in body["error"] and "INIT, OK, ERROR" in body["error"]

    status, body = viewer.get("/fleet/worker-1")
    assert status == 200
    assert body["label"] == "worker-1" and body["state"] == 1
    assert {"build_version", "start_time", "last_change", "last_update"} <= set(body)
    assert viewer.get("/fleet/nobody")[0] == 404

    # The view follows: the broken agent recovers, a worker stops (its lease goes with it).
    fake_agent(own_etcd, "broken", PluginState.OK)
    wait_until(lambda: labels(viewer.get("/fleet?state=ERROR")) == [], 10, "recovery seen")
    assert workers[1].stop(timeout=10) == 0
    wait_until(lambda: "worker-2" not in labels(viewer.get("/fleet")), 10, "stopped worker gone")

    # Prometheus sees the same numbers.
    status, text = viewer.get("/metrics")
    assert status == 200
    assert 'cninfra_fleet_agents{state="error"} 0.0' in text
    assert 'cninfra_fleet_agents{state="ok"} 3.0' in text
    assert "cninfra_fleet_synced 1.0" in text

    # The viewer reports the fleet cache among its plugins; the workers have none.
    assert viewer.get("/readiness")[1]["plugins"]["fleet"]["state"] == 1
    assert "fleet" not in workers[0].get("/readiness")[1]["plugins"]
    assert workers[0].get("/fleet")[0] == 404


def test_fleet_config_needs_etcd_and_can_be_switched_off(tmp_path: Path) -> None:
    (tmp_path / "fleet.conf").write_text("enabled: true\n")
    with pytest.raises(ConfigError, match=r"fleet\.conf: the fleet view reads .* etcd"):
        build(Options(config_dir=str(tmp_path), env={}))

    (tmp_path / "fleet.conf").write_text("enabled: false\n")
    assert "fleet" not in [p.name for p in build(Options(config_dir=str(tmp_path),
                                                         env={})).plugins]

    (tmp_path / "fleet.conf").write_text("prefix: vnf-agent\n")
    with pytest.raises(ConfigError, match="must start and end with '/'"):
        build(Options(config_dir=str(tmp_path), env={}))
    (tmp_path / "fleet.conf").write_text("enable: true\n")
    with pytest.raises(ConfigError, match="did you mean 'enabled'"):
        build(Options(config_dir=str(tmp_path), env={}))


def test_the_example_fleet_conf_is_valid(tmp_path: Path) -> None:
    for name in ("etcd.conf", "fleet.conf"):
        shutil.copy(example_config_dir().parent / "optional" / name, tmp_path / name)
    assert "fleet" in [p.name for p in build(Options(config_dir=str(tmp_path), env={})).plugins]


def test_state_names_and_numbers() -> None:
    assert parse_state("ERROR") is PluginState.ERROR
    assert parse_state(" ok ") is PluginState.OK
    assert parse_state("0") is PluginState.INIT
    for bad in ("3", "-1", "", "FAILED"):
        with pytest.raises(ValueError, match="use one of INIT, OK, ERROR"):
            parse_state(bad)

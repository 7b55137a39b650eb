"""The sidecar's state on its own Pod, against a real kube-apiserver and the chart's Role."""

from __future__ import annotations

import asyncio
import math
import os
import re
import time
from pathlib import Path

from sidecar.builder import Options, build
from sidecar.health.statuscheck import PluginState, StatusCheck
from sidecar.k8s import STATUS_ANNOTATION
from tests._wait import until
from tests.k8s.cluster import PodEnv, pod_patches, wait_for
from tests.servers._util import free_port
from tests.servers.etcd import EtcdServer
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess


def write_etcd_conf(config_dir: Path, etcd: EtcdServer, statuscheck: str = "") -> None:
    (config_dir / "etcd.conf").write_text(
        f"endpoints: ['{etcd.endpoint}']\ndial-timeout: 500ms\noperation-timeout: 1s\n"
        "reconnect-interval: 500ms\n")
    (config_dir / "statuscheck.conf").write_text("probe-interval: 200ms\n" + statuscheck)


def start_sidecar(config_dir: Path, env: PodEnv, sidecars: list[SidecarProcess]) -> SidecarProcess:
    proc = SidecarProcess(config_dir, env=env.env())
    sidecars.append(proc)
    return proc.start()


def plugin_error(proc: SidecarProcess, plugin: str) -> str | None:
    """The plugin's error while /readiness's status JSON shows it ERROR."""
    _, body = proc.get("/readiness")
    entry = body["plugins"].get(plugin, {}) if isinstance(body, dict) else {}
    return entry.get("error") if entry.get("state") == 2 else None


def patch_failures(proc: SidecarProcess) -> float:
    """PATCHes of the Pod status that failed (and were retried), from the sidecar's /metrics."""
    _, text = proc.get("/metrics")
    found = re.search(r"^cninfra_k8s_pod_status_patch_failures_total (\S+)$", str(text), re.M)
    assert found, "no cninfra_k8s_pod_status_patch_failures_total in /metrics"
    return float(found.group(1))


def test_plugin_error_flips_the_pod_condition_and_annotation_and_back(
        kube_apiserver: KubeApiServer, own_etcd: EtcdServer, config_dir: Path, tmp_path: Path,
        sidecars: list[SidecarProcess]) -> None:
    # Each flip is written at once (no periodic resync exists that could do it later) and
    # by its first PATCH: none failed and waited for a retry. etcd counts for readiness
    # here (cn-infra's behaviour), so that its outage flips the condition too.
    env = PodEnv(kube_apiserver, tmp_path)
    env.write_k8s_conf(config_dir)
    write_etcd_conf(config_dir, own_etcd, "readiness:\n  include: [etcd]\n")
    proc = start_sidecar(config_dir, env, sidecars)

    wait_for(lambda: env.shown() == ("OK", "True"), 15, "the Pod showing OK / Ready")
    assert proc.get("/readiness")[0] == 200
    detail = env.detail()
    assert detail["state"] == 1
    assert detail["plugins"]["k8s"]["state"] == 1
    assert detail["plugins"]["etcd"]["state"] == 1

    own_etcd.stop()
    error = wait_for(lambda: plugin_error(proc, "etcd"), 15, "the etcd plugin ERROR")
    wait_for(lambda: env.shown() == ("ERROR", "False"), 10, "the Pod showing ERROR / not ready")
    assert patch_failures(proc) == 0
    condition = env.condition()
    assert condition is not None
    assert condition["reason"] == "ReadinessError"
    assert condition["message"].startswith("etcd: ")
    assert env.detail()["plugins"]["etcd"]["error"] == error[:256] or \
        env.detail()["plugins"]["etcd"]["state"] == 2

    own_etcd.start()
    wait_for(lambda: proc.get("/readiness")[0] == 200, 15, "readiness back to 200")
    wait_for(lambda: env.shown() == ("OK", "True"), 10, "the Pod showing OK / Ready again")
    assert patch_failures(proc) == 0
    assert env.condition()["reason"] == "ReadinessOK"  # type: ignore[index]

    # The transitions are Events on the Pod (with its uid: kubectl describe lists them).
    wait_for(lambda: env.events("AgentError") and env.events("AgentRecovered"), 5,
             "AgentError and AgentRecovered Events")
    (error_event,) = env.events("AgentError")
    assert error_event["type"] == "Warning"
    assert error_event["message"].startswith("etcd: ")
    assert error_event["involvedObject"]["uid"] == env.uid
    assert error_event["source"]["component"] == "cninfra-sidecar"

    # Only the sidecar's own annotations: nothing of kopf's bookkeeping.
    annotations = env.pod()["metadata"]["annotations"]
    assert sorted(annotations) == [STATUS_ANNOTATION, "cninfra.io/status-detail"]
    assert proc.stop() == 0


class Flapper:
    """A user plugin whose state the test flips (the library use of the sidecar)."""

    name = "flapper"

    def __init__(self, statuscheck: StatusCheck) -> None:
        self.statuscheck = statuscheck

    async def init(self) -> None:
        self.statuscheck.register(self.name)
        self.statuscheck.report_state_change(self.name, PluginState.OK)

    async def after_init(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_a_hundred_flaps_within_a_second_make_a_handful_of_patches(
        kube_apiserver: KubeApiServer, config_dir: Path, tmp_path: Path) -> None:
    env = await asyncio.to_thread(PodEnv, kube_apiserver, tmp_path)
    env.write_k8s_conf(config_dir)
    sidecar = build(Options(config_dir=str(config_dir), http_port=str(free_port()),
                            env={**os.environ, **env.env()}))
    assert sidecar.k8s is not None
    flapper = Flapper(sidecar.statuscheck)
    async with sidecar.agent(flapper):
        # The reads block: in a thread, so that the sidecar's own loop goes on.
        await until(lambda: asyncio.to_thread(lambda: env.shown() == ("OK", "True")), 15,
                    "the Pod showing OK", interval=0.05)
        writer = sidecar.k8s.writer
        assert writer is not None
        patches_before = writer.patches
        served_before = await asyncio.to_thread(pod_patches, kube_apiserver)

        begin = time.monotonic()
        for i in range(100):
            state = PluginState.ERROR if i % 2 == 0 else PluginState.OK
            sidecar.statuscheck.report_state_change(flapper.name, state, f"flap {i}")
            await asyncio.sleep(0.008)  # the pace of the storm: about a second
        # One more change after the storm: the Pod must end up showing exactly it.
        sidecar.statuscheck.report_state_change(flapper.name, PluginState.ERROR, "final")
        storm = time.monotonic() - begin  # longer on a busy machine: more PATCHes allowed
        # The storm's own last write (ERROR "flap 98") already shows ERROR: wait for the
        # detail of the final change, which the rate limit delays by up to min-interval.
        await until(lambda: asyncio.to_thread(
            lambda: env.detail()["plugins"]["flapper"].get("error") == "final"), 5,
            "the final change on the Pod", interval=0.05)
        assert await asyncio.to_thread(env.shown) == ("ERROR", "False")
        detail = await asyncio.to_thread(env.detail)
        assert detail["plugins"]["flapper"] == {
            "state": 2, "last_change": detail["plugins"]["flapper"]["last_change"],
            "error": "final"}
        await asyncio.sleep(1.5)  # nothing more is due: no late PATCH may follow

        sent = writer.patches - patches_before
        served = await asyncio.to_thread(pod_patches, kube_apiserver) - served_before
        assert served == sent
        print(f"{sent} PATCHes for 101 changes in {storm:.2f} s")
        # At most one PATCH per min-interval (1 s) while the storm lasts, one for what it
        # left held, and one of slack for where the storm fell against the interval: 4 for
        # the storm of a second this is meant to be.
        allowed = 3 + math.ceil(storm / 1.0)
        assert 1 <= sent <= allowed, f"{sent} PATCHes for 101 changes in {storm:.2f} s"



"""etcd killed (SIGKILL), or stopped, and restarted under running sidecars.

etcd only reports: its outage shows in the status JSON, /metrics and the Pod's
annotations (the agent state ERROR), never in a probe or the Pod's readiness."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests._wait import wait_until
from tests.faults import status
from tests.faults.status import metric, only_failing, status_prefix
from tests.k8s.cluster import PodEnv
from tests.probes import ProbePoller
from tests.servers.etcd import EtcdServer, EtcdWatcher, lease_ids, leased_keys
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess

LABEL = "faults-etcd"
PREFIX = status_prefix(LABEL)


def published(etcd: EtcdServer, prefix: str = PREFIX) -> dict[str, dict[str, Any]]:
    return status.published(etcd, prefix)


def write_config(config_dir: Path, etcd: EtcdServer, stop_file: Path) -> None:
    (config_dir / "etcd.conf").write_text(
        f"endpoints: ['{etcd.endpoint}']\ndial-timeout: 500ms\noperation-timeout: 1s\n"
        "lease-ttl: 5s\nreconnect-interval: 500ms\n")
    (config_dir / "statuscheck.conf").write_text("publish-interval: 2s\nprobe-interval: 200ms\n")
    # A program that crash-loops once the stop file exists: a change made during the outage.
    (config_dir / "supervisor.conf").write_text(
        "programs:\n"
        "  - name: looper\n"
        "    executable-path: /bin/sh\n"
        f"    executable-args: ['-c', 'while [ ! -e {stop_file} ]; do sleep 0.05; done; exit 3']\n"
        "    restarts: -1\n"
        "    backoff-base: 50ms\n"
        "    backoff-cap: 200ms\n")


def test_etcd_killed_and_restarted(own_etcd: EtcdServer, kube_apiserver: KubeApiServer,
                                   config_dir: Path, tmp_path: Path,
                                   sidecars: list[SidecarProcess]) -> None:
    stop_file = tmp_path / "stop"
    write_config(config_dir, own_etcd, stop_file)
    pod = PodEnv(kube_apiserver, tmp_path)
    pod.write_k8s_conf(config_dir, status={"min-interval": "200ms"})
    proc = SidecarProcess(config_dir, "--microservice-label", LABEL, env=pod.env())
    sidecars.append(proc)
    proc.start()

    with ProbePoller(proc.url) as probes:
        probes.wait_for(lambda a: a.status == 200, 15, "readiness 200")
        wait_until(lambda: published(own_etcd).get("agent", {}).get("state") == 1, 10,
                   "the agent key OK in etcd")
        assert published(own_etcd)["plugin/program:looper"]["state"] == 1
        wait_until(lambda: pod.shown() == ("OK", "True"), 10, "the Pod showing OK / Ready")

        own_etcd.kill()
        killed = time.monotonic()
        down = probes.wait_for(lambda a: a.plugin_state("etcd") == 2, 10,
                               "the etcd plugin ERROR")
        assert "etcd unreachable" in down.plugins["etcd"]["error"]
        # etcd only reports: the agent state says ERROR, the pod stays in service...
        assert (down.status, down.body["state"]) == (200, 2)
        assert "etcd" in down.body["group"]["left_out"]
        assert metric(proc, "cninfra_plugin_state", plugin="etcd", state="error") == 1
        assert metric(proc, "cninfra_agent_state", state="error") == 1
        assert metric(proc, "cninfra_agent_ready") == 1
        # ...and so does the Pod: the annotations say ERROR, the readiness gate stays True.
        wait_until(lambda: pod.shown() == ("ERROR", "True"), 10, "the Pod showing ERROR / Ready")
        assert pod.detail()["plugins"]["etcd"]["state"] == 2

        # While etcd is away, a program starts crash-looping: only the sidecar knows.
        stop_file.touch()
        looping = probes.wait_for(lambda a: a.plugin_state("program:looper") == 2, 15,
                                  "program:looper ERROR")
        assert "crash-looping" in looping.plugins["program:looper"]["error"]
        assert looping.status == 503  # the pod's own program counts for readiness
        wait_until(lambda: pod.shown() == ("ERROR", "False"), 10, "the Pod not ready")
        time.sleep(max(0.0, 6 - (time.monotonic() - killed)))  # longer than the lease TTL

        own_etcd.start()
        probes.wait_for(lambda a: a.plugin_state("etcd") == 1, 15, "the etcd plugin OK again")

        def caught_up() -> bool:
            keys = published(own_etcd)
            return (keys.get("plugin/program:looper", {}).get("state") == 2
                    and keys.get("plugin/etcd", {}).get("state") == 1
                    and keys.get("agent", {}).get("state") == 2)

        wait_until(caught_up, 10, "etcd showing the crash loop and the etcd plugin OK")
        keys = published(own_etcd)
        # Nothing lost: every plugin the sidecar reports has its key, with the same state.
        body = probes.ask("/readiness").body
        assert {f"plugin/{name}" for name in body["plugins"]} | {"agent"} == set(keys)
        for name, status in body["plugins"].items():
            assert keys[f"plugin/{name}"]["state"] == status["state"], name
        assert "crash-looping" in keys["plugin/program:looper"]["error"]
        # Supervision never stopped: the program is still being restarted.
        restarts = proc.get("/supervisor/programs/looper")[1]["restarts"]
        wait_until(lambda: proc.get("/supervisor/programs/looper")[1]["restarts"] > restarts, 5,
                   "another restart of the looping program")

    probes.assert_always_answered()
    # The outage alone never took the pod out of service.
    alone = only_failing(probes.snapshot("/readiness"), "etcd")
    assert alone, "no answer while only the etcd plugin was ERROR"
    assert {a.status for a in alone} == {200}
    # etcd and programs are not fatal: the kubelet would never have restarted the sidecar.
    assert probes.statuses("/liveness") == {200}, probes.latency_summary()
    assert proc.stop() == 0
    assert published(own_etcd) == {}  # the lease is revoked on a clean stop


def test_etcd_restart_keeps_every_key_on_its_lease(own_etcd: EtcdServer, tmp_path: Path,
                                                   sidecars: list[SidecarProcess]) -> None:
    """etcd stopped for longer than the lease TTL and started again: no watcher sees a
    live agent's key deleted, and each sidecar still has exactly one lease."""
    ttls = {"handover-a": 2, "handover-b": 5}  # etcd's shortest lease, and the issue's
    procs: dict[str, SidecarProcess] = {}
    for label, ttl in ttls.items():
        config = tmp_path / label
        config.mkdir()
        (config / "etcd.conf").write_text(
            f"endpoints: ['{own_etcd.endpoint}']\ndial-timeout: 500ms\noperation-timeout: 1s\n"
            f"lease-ttl: {ttl}s\n")  # the default reconnect-interval (2s): longer than TTL/3
        (config / "statuscheck.conf").write_text("publish-interval: 10s\nprobe-interval: 200ms\n")
        procs[label] = SidecarProcess(config, "--microservice-label", label)
        sidecars.append(procs[label])
    endpoints = [own_etcd.url]

    def prefix(label: str) -> str:
        return f"/vnf-agent/{label}/check/status/v1/"

    def etcd_ok_in_etcd(label: str) -> Callable[[], bool]:
        return lambda: published(own_etcd, prefix(label)).get("plugin/etcd", {}).get("state") == 1

    with EtcdWatcher(endpoints, "/vnf-agent/") as watch, \
            ProbePoller(procs["handover-a"].start().url) as probes_a, \
            ProbePoller(procs["handover-b"].start().url) as probes_b:
        polled = {"handover-a": probes_a, "handover-b": probes_b}
        for label in ttls:
            wait_until(etcd_ok_in_etcd(label), 15, f"{label} published")
        before = lease_ids(endpoints)
        assert len(before) == 2, before

        own_etcd.stop()
        stopped = time.monotonic()
        for label, probes in polled.items():
            probes.wait_for(lambda a: a.plugin_state("etcd") == 2, 10, f"{label}: etcd ERROR")
        # etcd's lease clocks stand still while it is down: any outage is survivable.
        time.sleep(max(0.0, max(ttls.values()) + 1 - (time.monotonic() - stopped)))
        own_etcd.start()
        restarted = time.monotonic()
        for label, probes in polled.items():
            probes.wait_for(lambda a: a.plugin_state("etcd") == 1, 15, f"{label}: etcd OK again")
            # What the sidecar said during the outage reaches etcd (the publisher was woken).
            wait_until(etcd_ok_in_etcd(label), 5, f"{label}: etcd OK in etcd")
        # Before the leases etcd had before its restart could expire: still one per sidecar.
        assert lease_ids(endpoints) == before

        # Past the point where a lease left behind would have expired (etcd gives every
        # lease TTL + its 1 s election timeout after a restart).
        wait_until(lambda: time.monotonic() - restarted > max(ttls.values()) + 2,
                   max(ttls.values()) + 5, "the old leases' expiry")
        watch.sync()
        assert watch.deletes() == [], "a watcher saw a live agent's keys deleted"
        assert lease_ids(endpoints) == before
        for label, proc in procs.items():
            keys = leased_keys(endpoints, prefix(label))
            body = proc.get("/readiness")[1]
            assert set(keys) == {prefix(label) + "agent"} | {
                f"{prefix(label)}plugin/{name}" for name in body["plugins"]}
            assert len(set(keys.values())) == 1, f"{label}'s keys on several leases: {keys}"
            assert set(keys.values()) <= before

    for probes in polled.values():
        probes.assert_always_answered()
        assert probes.statuses("/liveness") == {200}, probes.latency_summary()
    for label, proc in procs.items():
        assert proc.stop() == 0
        assert published(own_etcd, prefix(label)) == {}
    assert lease_ids(endpoints) == set()  # each sidecar revoked its lease when it stopped

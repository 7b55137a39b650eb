"""The kube-apiserver stopped under a sidecar that mirrors its state onto its Pod and runs
the programs of a ConfigMap."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from tests.faults.status import metric, only_failing, published, status_prefix
from tests.k8s.cluster import PodEnv, wait_for
from tests.probes import ProbePoller
from tests.servers.etcd import EtcdServer
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess

LABEL = "faults-kube"


def programs_text(*names: str) -> str:
    return json.dumps({"programs": [
        {"name": name, "executable-path": "/bin/sleep", "executable-args": ["3600"],
         "restarts": -1} for name in names]})


def pids(proc: SidecarProcess) -> dict[str, Any]:
    status, rows = proc.get("/supervisor/programs")
    assert status == 200, rows
    return {row["name"]: row["pid"] for row in rows if row["running"]}


def test_apiserver_stopped(own_kube_apiserver: KubeApiServer, own_etcd: EtcdServer,
                           config_dir: Path, tmp_path: Path,
                           sidecars: list[SidecarProcess]) -> None:
    env = PodEnv(own_kube_apiserver, tmp_path)
    cm = env.programs_configmap
    env.put_configmap(cm, {"supervisor.conf": programs_text("alpha")})
    (config_dir / "supervisor.conf").write_text("programs: []\n")
    (config_dir / "statuscheck.conf").write_text("probe-interval: 200ms\n")
    (config_dir / "etcd.conf").write_text(
        f"endpoints: ['{own_etcd.endpoint}']\ndial-timeout: 500ms\noperation-timeout: 1s\n")
    env.write_k8s_conf(config_dir, configmap={"name": cm}, error_grace="2s",
                       status={"min-interval": "500ms", "max-backoff": "1s"})
    proc = SidecarProcess(config_dir, "--microservice-label", LABEL, env=env.env())
    sidecars.append(proc)
    proc.start()
    wait_for(lambda: "alpha" in pids(proc), 15, "alpha started from the ConfigMap")
    wait_for(lambda: env.shown() == ("OK", "True"), 15, "the Pod showing OK / Ready")

    with ProbePoller(proc.url) as probes:
        own_kube_apiserver.stop()
        # The Pod has something new to show (a program that stops and goes on): the
        # writes fail, and the k8s plugin says so once they have failed for error-grace.
        alpha = pids(proc)["alpha"]
        os.kill(alpha, signal.SIGSTOP)
        probes.wait_for(lambda a: a.plugin_state("program:alpha") == 2, 10,
                        "program:alpha ERROR (stopped)")
        os.kill(alpha, signal.SIGCONT)
        down = probes.wait_for(lambda a: a.plugin_state("k8s") == 2
                               and a.plugin_state("program:alpha") == 1, 15,
                               "the k8s plugin ERROR, program:alpha OK again")
        # k8s only reports: the agent state says ERROR, the pod is back in service.
        assert (down.status, down.body["state"]) == (200, 2)
        assert "k8s" in down.body["group"]["left_out"]
        assert metric(proc, "cninfra_plugin_state", plugin="k8s", state="error") == 1
        assert metric(proc, "cninfra_agent_state", state="error") == 1
        assert metric(proc, "cninfra_agent_ready") == 1

        def k8s_error_in_etcd() -> dict[str, Any] | None:
            keys = published(own_etcd, status_prefix(LABEL))
            return keys if keys.get("plugin/k8s", {}).get("state") == 2 else None

        keys = wait_for(k8s_error_in_etcd, 10, "the k8s plugin ERROR in etcd")
        assert keys["agent"]["state"] == 2

        # Supervision does not need the API server: a killed program comes back.
        first = pids(proc)["alpha"]
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: pids(proc).get("alpha") not in (None, first), 10,
                 "alpha restarted while the API server is away")

        own_kube_apiserver.start()
        probes.wait_for(lambda a: a.plugin_state("k8s") == 1, 30,
                        "the k8s plugin OK once it is back")
        wait_for(lambda: env.shown() == ("OK", "True"), 15, "the Pod showing OK again")
        # What the Pod shows is the pod's state, never the sidecar's own API outage.
        assert env.detail()["plugins"]["k8s"]["state"] == 1
        # The ConfigMap watch is back too: an edit after the outage is applied.
        second = pids(proc)["alpha"]
        env.put_configmap(cm, {"supervisor.conf": programs_text("alpha", "beta")})
        wait_for(lambda: set(pids(proc)) == {"alpha", "beta"}, 20, "beta started")
        assert pids(proc)["alpha"] == second

    probes.assert_always_answered()
    # The outage alone never took the pod out of service, however long it lasted.
    alone = only_failing(probes.snapshot("/readiness"), "k8s")
    assert alone, "no answer while only the k8s plugin was ERROR"
    assert {a.status for a in alone} == {200}
    assert probes.statuses("/liveness") == {200}, probes.latency_summary()
    assert proc.stop() == 0

"""The kube-apiserver stopped under a sidecar that mirrors its state onto its Pod and runs
the programs of a ConfigMap."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from tests.k8s.cluster import PodEnv, wait_for
from tests.probes import ProbePoller
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess


def programs_text(*names: str) -> str:
    return json.dumps({"programs": [
        {"name": name, "executable-path": "/bin/sleep", "executable-args": ["3600"],
         "restarts": -1} for name in names]})


def pids(proc: SidecarProcess) -> dict[str, Any]:
    status, rows = proc.get("/supervisor/programs")
    assert status == 200, rows
    return {row["name"]: row["pid"] for row in rows if row["running"]}


def test_apiserver_stopped(own_kube_apiserver: KubeApiServer, config_dir: Path, tmp_path: Path,
                           sidecars: list[SidecarProcess]) -> None:
    env = PodEnv(own_kube_apiserver, tmp_path)
    cm = env.programs_configmap
    env.put_configmap(cm, {"supervisor.conf": programs_text("alpha")})
    (config_dir / "supervisor.conf").write_text("programs: []\n")
    (config_dir / "statuscheck.conf").write_text("probe-interval: 200ms\n")
    env.write_k8s_conf(config_dir, configmap={"name": cm}, error_grace="2s",
                       status={"min-interval": "500ms", "max-backoff": "1s"})
    proc = SidecarProcess(config_dir, env=env.env())
    sidecars.append(proc)
    proc.start()
    wait_for(lambda: "alpha" in pids(proc), 15, "alpha started from the ConfigMap")
    wait_for(lambda: env.shown() == ("OK", "True"), 15, "the Pod showing OK / Ready")

    with ProbePoller(proc.url) as probes:
        own_kube_apiserver.stop()
        down = probes.wait_for(lambda a: a.plugin_state("k8s") == 2, 15,
                               "the k8s plugin ERROR after error-grace")
        assert down.status == 503

        # Supervision does not need the API server: a killed program comes back.
        first = pids(proc)["alpha"]
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: pids(proc).get("alpha") not in (None, first), 10,
                 "alpha restarted while the API server is away")

        own_kube_apiserver.start()
        probes.wait_for(lambda a: a.status == 200, 30, "readiness 200 once it is back")
        wait_for(lambda: env.shown() == ("OK", "True"), 15, "the Pod showing OK again")
        # The ConfigMap watch is back too: an edit after the outage is applied.
        second = pids(proc)["alpha"]
        env.put_configmap(cm, {"supervisor.conf": programs_text("alpha", "beta")})
        wait_for(lambda: set(pids(proc)) == {"alpha", "beta"}, 20, "beta started")
        assert pids(proc)["alpha"] == second

    probes.assert_always_answered()
    assert probes.statuses("/liveness") == {200}, probes.latency_summary()
    assert proc.stop() == 0

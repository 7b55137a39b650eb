"""The programs ConfigMap of a running pod, and a fatal program that crash-loops."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from tests._wait import wait_until
from tests.e2e.conftest import (
    DEPLOYMENT,
    SIDECAR,
    Namespace,
    condition,
    container_id,
    container_status,
)

# A first test also waits for the cluster (and an image rebuild after a code change).
pytestmark = pytest.mark.timeout(600)

PROGRAMS = "demo-cninfra-sidecar-programs"


def _apply_programs(ns: Namespace, text: str) -> None:
    """``kubectl apply`` of the programs ConfigMap with a new supervisor.conf."""
    config_map = ns.json("get", "configmap", PROGRAMS)
    config_map["metadata"] = {k: v for k, v in config_map["metadata"].items()
                              if k in ("name", "namespace", "labels", "annotations")}
    config_map["data"]["supervisor.conf"] = text
    ns.kubectl("apply", "-f", "-", input=json.dumps(config_map))


def _programs(ns: Namespace) -> dict[str, dict[str, Any]]:
    rows = json.loads(ns.kubectl("exec", DEPLOYMENT, "-c", SIDECAR, "--",
                                 "sidecar", "programs", "list", "--json"))
    return {row["name"]: row for row in rows}


def _reasons(ns: Namespace, pod: str, type_: str) -> list[str]:
    return [e["reason"] for e in ns.events(pod) if e["type"] == type_]


def test_an_edited_programs_configmap_applies_to_the_running_pod(ns: Namespace) -> None:
    ns.helm_install()
    [pod] = ns.wait_ready()
    name = pod["metadata"]["name"]
    heartbeat = {"name": "heartbeat", "executable-path": "/bin/sh",
                 "executable-args": ["-c", "while true; do sleep 1; done"], "restarts": -1}
    _apply_programs(ns, yaml.safe_dump({"programs": [heartbeat], "hooks": []}))
    running = wait_until(lambda: _programs(ns).get("heartbeat", {}).get("pid"), 60,
                         "heartbeat started in the running pod")
    assert "ConfigMapApplied" in _reasons(ns, name, "Normal")
    # A malformed edit: a Warning Event names it, and nothing changes.
    _apply_programs(ns, yaml.safe_dump({"programs": [{**heartbeat, "restarts": "often"}]}))
    wait_until(lambda: "ConfigMapRejected" in _reasons(ns, name, "Warning"), 60,
               "a ConfigMapRejected Warning Event")
    assert _programs(ns)["heartbeat"]["pid"] == running
    [after] = ns.pods()
    assert container_status(after, SIDECAR)["restartCount"] == 0
    assert condition(after, "Ready") == "True"


def test_a_crash_looping_fatal_program_fails_the_probes_and_the_sidecar_restarts(
        ns: Namespace) -> None:
    # Liveness every 2 s, failing after 2: the kubelet acts within seconds.
    ns.helm_install("--set", "sidecar.probes.liveness.periodSeconds=2",
                    "--set", "sidecar.probes.liveness.failureThreshold=2")
    [pod] = ns.wait_ready()
    name = pod["metadata"]["name"]
    app_id = container_id(pod, "app")
    crasher = {"name": "crasher", "executable-path": "/bin/sh",
               "executable-args": ["-c", "sleep 0.2; exit 3"], "restarts": -1, "fatal": True}
    _apply_programs(ns, yaml.safe_dump({"programs": [crasher], "hooks": []}))

    def probes_failed_and_restarted() -> dict[str, Any] | None:
        [current] = ns.pods()
        sidecar = container_status(current, SIDECAR)
        return current if sidecar["restartCount"] >= 1 else None

    # The pod went NotReady (the readiness probe and the cninfra.io/ready gate)...
    wait_until(lambda: condition(ns.pods()[0], "Ready") == "False", 60, "the pod NotReady")
    # ...and once liveness failed, the kubelet restarted the sidecar container.
    restarted = wait_until(probes_failed_and_restarted, 120, "the sidecar restarted")
    warnings = [e["message"] for e in ns.events(name) if e["reason"] == "Unhealthy"]
    assert any("Liveness probe failed" in m and "503" in m for m in warnings), warnings
    assert any("Readiness probe failed" in m for m in warnings), warnings
    # The workload kept running all along: the same container, never restarted.
    app = container_status(restarted, "app")
    assert container_id(restarted, "app") == app_id and app["restartCount"] == 0
    assert "running" in app["state"]

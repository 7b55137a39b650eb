"""``helm test`` of the chart (its hook runs ``sidecar status`` against the sidecars through
their metrics Service, by its DNS name: the cluster's DNS and kube-proxy on the node),
and the chart's NetworkPolicy on the API server.

The test bed's CNI (the reference ``bridge`` plugin) does not enforce NetworkPolicies:
what can be checked here is that the API server takes the policy objects as the chart
renders them (strict server-side validation), that they select the pods and admit the
test pod, and that with the policy in place the kubelet's probes and ``helm test`` pass.
Whether an enforcing CNI blocks what the policy leaves out is not tested here."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests._wait import wait_until
from tests.e2e.conftest import CHART, RELEASE, SIDECAR, Namespace, condition, container_status

# A first test also waits for the cluster (and an image rebuild after a code change).
pytestmark = pytest.mark.timeout(600)

TEST_POD = f"{RELEASE}-cninfra-sidecar-test-status"
SERVICE = f"{RELEASE}-cninfra-sidecar-metrics"


def _helm_test(ns: Namespace) -> subprocess.CompletedProcess[str]:
    """``helm test`` as the chart's notes print it, with the test pod's logs."""
    return ns.cluster.run("helm", "test", RELEASE, "-n", ns.name, "--logs", "--timeout=120s",
                          check=False, timeout=180)


def _wait_service_forwards(ns: Namespace) -> None:
    """Until the metrics Service forwards to the pod: a pod just Ready is in it once its
    EndpointSlice says so and kube-proxy has synced its rules (a moment, on any cluster)."""
    ip = ns.json("get", "service", SERVICE)["spec"]["clusterIP"]
    wait_until(lambda: ns.cluster.run("curl", "-s", "-o", "/dev/null", f"http://{ip}:9191/liveness",
                                      check=False).returncode == 0,
               30, f"service/{SERVICE} forwarding to the pod")


def _test_pod(ns: Namespace) -> dict[str, Any]:
    return dict(ns.json("get", "pod", TEST_POD))


def test_helm_test_passes_against_ready_sidecars_with_the_networkpolicy_on(
        ns: Namespace) -> None:
    ns.helm_install("--set", "networkPolicy.enabled=true")
    [pod] = ns.wait_ready()
    _wait_service_forwards(ns)
    done = _helm_test(ns)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Phase:          Succeeded" in done.stdout, done.stdout
    # The hook's own output (--logs): `sidecar status` of the sidecar that answered.
    logs = done.stdout.split(f"POD LOGS: {TEST_POD}", 1)[1]
    assert logs.split()[:2] == ["agent", "OK"], logs
    assert _test_pod(ns)["status"]["phase"] == "Succeeded"

    # The policy, as the API server keeps it: it selects the pod, and its rule for the
    # sidecar's port admits the test pod (by its labels) and the scrapers.
    [policy] = ns.json("get", "networkpolicy")["items"]
    labels = pod["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    [sidecar_rule] = [r for r in policy["spec"]["ingress"]
                      if {"port": 9191, "protocol": "TCP"} in r["ports"]]
    test_labels = _test_pod(ns)["metadata"]["labels"]
    assert any(peer.get("podSelector", {}).get("matchLabels", {}).items() <= test_labels.items()
               and "namespaceSelector" not in peer for peer in sidecar_rule["from"])
    # The kubelet's probes passed with the policy there (they come from the node).
    assert container_status(pod, SIDECAR)["ready"] and condition(pod, "cninfra.io/ready") == "True"

    # The test bed's fact, not the chart's: its bridge CNI enforces no NetworkPolicy, so a
    # pod the policy leaves out (no test label, not a scraper) still gets through. On a
    # cluster whose CNI enforces policies this pod would fail to connect.
    ns.kubectl("run", "outsider", f"--image={ns.cluster.images['sidecar'].ref}",
               "--image-pull-policy=Never", "--restart=Never", "--command", "--",
               "sidecar", "status", "--url", f"http://{SERVICE}:9191")
    outsider = wait_until(lambda: ns.json("get", "pod", "outsider")["status"]["phase"]
                          in ("Succeeded", "Failed") and ns.json("get", "pod", "outsider"),
                          60, "the outsider pod's end")
    assert outsider["status"]["phase"] == "Succeeded", ns.kubectl("logs", "outsider")


def test_helm_test_fails_when_the_sidecar_is_not_ready(ns: Namespace) -> None:
    # cn-infra's readiness (every plugin counts) and an etcd that is not there: the
    # sidecar runs (its startup probe asks /liveness) but never becomes ready.
    nowhere = {"endpoints": [f"{ns.cluster.pod_etcd_endpoint.split(':')[0]}:1"],
               "dial-timeout": "1s"}
    ns.helm_install("--set-json", f"config.etcd={json.dumps(nowhere)}",
                    "--set-json", 'config.statuscheck={"readiness": {"include": ["*"]}}')

    def started_not_ready() -> dict[str, Any] | None:
        pods = ns.pods()
        if len(pods) != 1 or not container_status(pods[0], SIDECAR).get("started"):
            return None
        return pods[0]
    pod = wait_until(started_not_ready, 120, "the sidecar started")
    assert condition(pod, "Ready") != "True"
    done = _helm_test(ns)
    assert done.returncode != 0, done.stdout
    # No ready endpoint behind the Service: the hook cannot reach a sidecar.
    logs = ns.kubectl("logs", TEST_POD)
    assert f"cannot reach http://{SERVICE}.{ns.name}.svc:9191" in logs, logs
    assert _test_pod(ns)["status"]["phase"] == "Failed"


def test_helm_test_fails_when_a_ready_sidecar_reports_a_plugin_down(ns: Namespace) -> None:
    # etcd only reports (in no probe group): the pod is Ready, the agent's state ERROR.
    nowhere = {"endpoints": [f"{ns.cluster.pod_etcd_endpoint.split(':')[0]}:1"],
               "dial-timeout": "1s"}
    ns.helm_install("--set-json", f"config.etcd={json.dumps(nowhere)}")
    ns.wait_ready()
    _wait_service_forwards(ns)
    wait_until(lambda: ns.pods()[0]["metadata"].get("annotations", {}).get("cninfra.io/status")
               == "ERROR", 60, "the sidecar reporting etcd down")
    done = _helm_test(ns)
    assert done.returncode != 0, done.stdout
    logs = ns.kubectl("logs", TEST_POD)
    assert logs.split()[:2] == ["agent", "ERROR"], logs
    assert any(line.split()[:2] == ["etcd", "ERROR"] for line in logs.splitlines()), logs
    assert _test_pod(ns)["status"]["phase"] == "Failed"


@pytest.mark.parametrize("values", [
    {"networkPolicy": {"enabled": True}},
    {"networkPolicy": {"enabled": True, "metricsFrom": [],
                       "workloadFrom": [{"podSelector": {"matchLabels": {"role": "frontend"}}}],
                       "extraIngress": [{"ports": [{"port": 9000}]}]}},
    {"networkPolicy": {"enabled": True, "extraIngress": [{"ports": [{"port": 8080}]}]},
     "workload": {"enabled": False}, "tests": {"enabled": False}},
], ids=["defaults", "workload-from-and-extra", "sidecar-only"])
def test_the_networkpolicy_passes_strict_server_side_validation(
        ns: Namespace, values: dict[str, Any]) -> None:
    values_file = ns.tmp / "values.json"
    values_file.write_text(json.dumps(values))
    rendered = ns.cluster.run("helm", "template", RELEASE, str(CHART), "-n", ns.name,
                              "-f", str(values_file)).stdout
    applied = ns.kubectl("apply", "--dry-run=server", "--validate=strict", "-o", "json",
                         "-f", "-", input=rendered)
    objects = json.loads(applied)
    items = objects["items"] if objects.get("kind") == "List" else [objects]
    [policy] = [o for o in items if o["kind"] == "NetworkPolicy"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"]

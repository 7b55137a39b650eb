"""Mode (a): ``helm install`` of the chart, and what the README then tells users to do."""

from __future__ import annotations

import json

import pytest

from tests._wait import wait_until
from tests.e2e.conftest import (
    DEPLOYMENT,
    SIDECAR,
    Namespace,
    condition,
    container_id,
    container_status,
    containerd_events,
    probe_counts,
)

# A first test also waits for the cluster (and an image rebuild after a code change).
pytestmark = pytest.mark.timeout(600)


def test_helm_install_runs_a_ready_pod_with_a_native_sidecar(ns: Namespace) -> None:
    with containerd_events(ns.cluster, ns.tmp) as events:
        notes = ns.helm_install()
        [pod] = ns.wait_ready()
    assert f"kubectl -n {ns.name} port-forward {DEPLOYMENT} 9191:9191" in notes
    name = pod["metadata"]["name"]
    [row] = ns.kubectl("get", "pods").splitlines()[1:]
    assert row.split()[1:3] == ["2/2", "Running"], row
    # 2/2: the native sidecar (an init container that keeps running) and the workload.
    sidecar, app = container_status(pod, SIDECAR), container_status(pod, "app")
    assert sidecar["ready"] and sidecar["started"] and app["ready"]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == [SIDECAR]
    assert pod["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    # The sidecar's process started before the workload's (the kubelet waited for
    # its startup probe).
    starts = [e.container for e in events if e.topic == "/tasks/start"]
    assert starts.index(container_id(pod, SIDECAR)) < starts.index(container_id(pod, "app"))
    # The readiness gate: the k8s plugin set the condition, and the annotations.
    assert condition(pod, "cninfra.io/ready") == "True"
    annotations = pod["metadata"]["annotations"]
    assert annotations["cninfra.io/status"] == "OK"
    detail = json.loads(annotations["cninfra.io/status-detail"])
    assert detail["state"] == 1 and set(detail["plugins"]) >= {"k8s"}
    assert any(e["reason"] == "AgentReady" for e in ns.events(name))
    # The kubelet probed the sidecar: startup (which may fail while the sidecar
    # starts: that is what it is for), then liveness and readiness, never failing.
    wait_until(lambda: all(probe_counts(ns.cluster, ns.name).get((SIDECAR, kind, "successful"))
                           for kind in ("Startup", "Liveness", "Readiness")),
               60, "the kubelet's successful startup, liveness and readiness probes")
    counts = probe_counts(ns.cluster, ns.name)
    assert not any(n for (c, kind, result), n in counts.items() if c == SIDECAR
                   and kind != "Startup" and result != "successful"), counts


def test_port_forward_curl_and_the_cli_reach_the_sidecar(ns: Namespace) -> None:
    ns.helm_install()
    [pod] = ns.wait_ready()
    with ns.port_forward(DEPLOYMENT) as address:
        curl = ns.cluster.run
        readiness = json.loads(curl("curl", "-s", f"{address}/readiness").stdout)
        assert readiness["state"] == 1
        # port-forward arrives on loopback: the admin allow-list lets it change a level.
        put = curl("curl", "-s", "-w", "\\n%{http_code}", "-X", "PUT",
                   f"{address}/log/sidecar/debug").stdout
        body, code = put.rsplit("\n", 1)
        assert code == "200" and json.loads(body) == {"logger": "sidecar", "level": "debug"}
        listed = curl("sidecar", "log", "list", "--url", f"http://{address}").stdout
        assert any(line.split()[:2] == ["sidecar", "debug"] for line in listed.splitlines()), listed
    # From anywhere else (here: the node, not loopback) the same call is refused.
    ip = pod["status"]["podIP"]
    refused = ns.cluster.run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
                             f"http://{ip}:9191/log/sidecar/info").stdout
    assert refused in ("401", "403")
    status = ns.kubectl("exec", DEPLOYMENT, "-c", SIDECAR, "--", "sidecar", "status")
    assert "OK" in status


def test_the_image_runs_as_10001_on_a_read_only_root(ns: Namespace) -> None:
    ns.helm_install()
    ns.wait_ready()
    assert ns.kubectl("exec", DEPLOYMENT, "-c", SIDECAR, "--", "id", "-u").strip() == "10001"
    touch = ns.cluster.run("kubectl", "-n", ns.name, "exec", DEPLOYMENT, "-c", SIDECAR, "--",
                           "touch", "/opt/sidecar/x", check=False)
    assert touch.returncode != 0 and "Read-only file system" in touch.stderr
    # /tmp is the emptyDir the chart mounts: the one writable place.
    ns.kubectl("exec", DEPLOYMENT, "-c", SIDECAR, "--", "touch", "/tmp/x")

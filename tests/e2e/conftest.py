"""What the end-to-end tests share: a namespace each, the chart installed as the
README says, port-forwards, the kubelet's metrics and containerd's events.

Every command is what a user types (``helm``, ``kubectl``, ``curl``, ``sidecar``),
run in the cluster's network namespace with its kubeconfig.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests._wait import wait_until
from tests.servers.kubecluster import NODE_NAME, KubeCluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "cninfra-sidecar"
RELEASE = "demo"
DEPLOYMENT = f"deploy/{RELEASE}-cninfra-sidecar"
SIDECAR = "cninfra-sidecar"
#: A pod's first start: scheduling, volumes, two containers, the readiness gate.
READY_TIMEOUT = 120


@dataclass
class Namespace:
    """A namespace of the test's own in the cluster, and the tools run against it."""

    cluster: KubeCluster
    name: str
    tmp: Path

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                timeout: float = 120) -> str:
        return self.cluster.run("kubectl", "-n", self.name, *args, check=check, input=input,
                                timeout=timeout).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def helm_install(self, *values: str, chart: Path = CHART, release: str = RELEASE) -> str:
        """The README's ``helm install``, with the image of the current code."""
        repository, tag = self.cluster.images["sidecar"].ref.rsplit(":", 1)
        prefix = "" if chart == CHART else "cninfra-sidecar."
        return self.cluster.run(
            "helm", "install", release, str(chart), "-n", self.name, "--create-namespace",
            "--set", f"{prefix}image.repository={repository}", "--set", f"{prefix}image.tag={tag}",
            *values, timeout=180).stdout

    def pods(self, selector: str = "") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json("get", "pods", *(["-l", selector] if selector
                                                                  else []))["items"]
        return items

    def wait_ready(self, count: int = 1, selector: str = "",
                   timeout: float = READY_TIMEOUT) -> list[dict[str, Any]]:
        """``count`` pods Ready (every container, and the readiness gate), none other."""
        def ready() -> list[dict[str, Any]] | None:
            pods = [p for p in self.pods(selector) if "deletionTimestamp" not in p["metadata"]]
            if len(pods) == count and all(condition(p, "Ready") == "True" for p in pods):
                return pods
            return None
        return wait_until(ready, timeout, f"{count} pod(s) Ready in {self.name}", interval=0.5)

    def events(self, pod: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.json(
            "get", "events", "--field-selector", f"involvedObject.name={pod}")["items"]
        return items

    @contextlib.contextmanager
    def port_forward(self, target: str, port: int = 9191) -> Iterator[str]:
        """``kubectl port-forward TARGET PORT:PORT`` in the background, as the chart's
        notes say; yields ``localhost:PORT`` once it forwards."""
        log = self.tmp / f"port-forward-{uuid.uuid4().hex[:6]}.log"
        proc = self.cluster.popen("kubectl", "-n", self.name, "port-forward", target,
                                  f"{port}:{port}", log=log)
        try:
            wait_until(lambda: "Forwarding from" in log.read_text() or proc.poll() is not None,
                       30, f"kubectl port-forward {target}")
            if proc.poll() is not None:
                pytest.fail(f"kubectl port-forward ended: {log.read_text()}")
            yield f"localhost:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


def condition(pod: dict[str, Any], kind: str) -> str | None:
    for c in pod.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return str(c["status"])
    return None


def container_status(pod: dict[str, Any], name: str) -> dict[str, Any]:
    status = pod["status"]
    for c in status.get("initContainerStatuses", []) + status.get("containerStatuses", []):
        if c["name"] == name:
            return dict(c)
    raise KeyError(f"no container {name} in pod {pod['metadata']['name']}")


def container_id(pod: dict[str, Any], name: str) -> str:
    return str(container_status(pod, name)["containerID"]).removeprefix("containerd://")


@pytest.fixture
def ns(kube_cluster: KubeCluster, request: pytest.FixtureRequest,
       tmp_path: Path) -> Iterator[Namespace]:
    """A namespace of this test's own, deleted afterwards (its pods stop in the
    background; the cluster's teardown removes whatever is left)."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:40]
    name = f"{base.strip('-')}-{uuid.uuid4().hex[:4]}"
    kube_cluster.run("kubectl", "create", "namespace", name)
    try:
        yield Namespace(kube_cluster, name, tmp_path)
    finally:
        kube_cluster.run("kubectl", "delete", "namespace", name, "--wait=false", check=False)


def probe_counts(cluster: KubeCluster, namespace: str) -> dict[tuple[str, str, str], float]:
    """The kubelet's ``prober_probe_total`` for a namespace, by (container, probe
    type, result): what the kubelet itself counted."""
    text = cluster.run("kubectl", "get", "--raw",
                       f"/api/v1/nodes/{NODE_NAME}/proxy/metrics/probes").stdout
    counts: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("prober_probe_total{") and f'namespace="{namespace}"' in line:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = (labels["container"], labels["probe_type"], labels["result"])
            counts[key] = counts.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return counts


@dataclass(frozen=True)
class TaskEvent:
    """One of containerd's task events: a container's process started or exited."""

    topic: str  # /tasks/start, /tasks/exit
    container: str
    exit_status: int | None  # of an exit


@contextlib.contextmanager
def containerd_events(cluster: KubeCluster, tmp: Path) -> Iterator[list[TaskEvent]]:
    """Record containerd's task events (``ctr events``) while the block runs; the
    list is filled, in the order containerd sent them, when it ends."""
    log = tmp / "ctr-events.log"
    found: list[TaskEvent] = []
    with open(log, "wb") as out:
        proc = subprocess.Popen(["ctr", "--address", str(cluster.socket), "events"], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield found
    finally:
        proc.terminate()
        proc.wait(10)
        for line in log.read_text().splitlines():
            match = re.search(r" k8s\.io (/tasks/(?:start|exit)) (\{.*\})$", line)
            if match:
                data = json.loads(match.group(2))
                if data.get("id", data["container_id"]) == data["container_id"]:  # not an exec
                    exit_status = data.get("exit_status", 0) if "exit" in match.group(1) else None
                    found.append(TaskEvent(match.group(1), data["container_id"], exit_status))

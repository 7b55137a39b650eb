"""The operator (charts/cninfra-operator) in the real cluster: installed as its README says,
it injects the sidecar into the pods of an annotated Deployment, which the kubelet probes
and which become Ready, and its /fleet lists them; a Deployment without the annotation
is left as it is. The API server calls the webhook through its Service, as on any
cluster (kube-proxy's rules on the node)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests._wait import wait_until
from tests.e2e import operator_chart
from tests.e2e.conftest import (
    SIDECAR,
    Namespace,
    condition,
    container_status,
    probe_counts,
)

# A first test also waits for the cluster (and an image rebuild after a code change).
pytestmark = pytest.mark.timeout(600)

#: The operator's replicas: Ready once they serve the webhook with a trusted certificate.
OPERATOR_READY_TIMEOUT = 180


def _deployment(name: str, image: str, replicas: int,
                annotations: dict[str, str]) -> dict[str, Any]:
    """A plain workload, as a user has it: the demo image, a readiness probe of its own."""
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "app", "image": image, "imagePullPolicy": "Never",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"},
                                           "periodSeconds": 2},
                    }],
                },
            },
        },
    }


@contextlib.contextmanager
def _operator(ns: Namespace) -> Iterator[None]:
    """The operator chart installed into ``ns``, its replicas Ready; uninstalled afterwards."""
    try:
        notes = operator_chart.install(ns.cluster, ns.name, ns.tmp)
        assert 'cninfra.io/inject: "true"' in notes
        ns.wait_ready(2, operator_chart.SELECTOR, timeout=OPERATOR_READY_TIMEOUT)
        yield
    finally:
        operator_chart.uninstall(ns.cluster, ns.name)


@contextlib.contextmanager
def _apps_namespace(ns: Namespace) -> Iterator[Namespace]:
    """A namespace for the workloads: the operator never injects into its own."""
    apps = Namespace(ns.cluster, f"{ns.name}-apps", ns.tmp)
    ns.cluster.run("kubectl", "create", "namespace", apps.name)
    try:
        yield apps
    finally:
        ns.cluster.run("kubectl", "delete", "namespace", apps.name, "--wait=false", check=False)


def _fleet(ns: Namespace, address: str, query: str = "") -> dict[str, Any]:
    out = ns.cluster.run("curl", "-sf", f"http://{address}/fleet{query}").stdout
    return dict(json.loads(out))


def test_an_annotated_deployment_runs_with_the_sidecar_and_shows_in_the_fleet(
        ns: Namespace) -> None:
    workload = ns.cluster.images["workload"].ref
    with _operator(ns), _apps_namespace(ns) as apps:
        apps.kubectl("apply", "-f", "-", input=json.dumps(
            _deployment("web", workload, 2, {"cninfra.io/inject": "true"})))
        apps.kubectl("apply", "-f", "-", input=json.dumps(_deployment("plain", workload, 1, {})))
        injected = apps.wait_ready(2, "app=web")
        [plain] = apps.wait_ready(1, "app=plain")

        for pod in injected:
            # The chart's sidecar, as a native sidecar, with its readiness gate: the
            # pod was Ready only once the sidecar had set cninfra.io/ready.
            assert [c["name"] for c in pod["spec"]["initContainers"]] == [SIDECAR]
            assert pod["spec"]["initContainers"][0]["restartPolicy"] == "Always"
            assert [c["name"] for c in pod["spec"]["containers"]] == ["app"]
            assert container_status(pod, SIDECAR)["ready"]
            assert condition(pod, "cninfra.io/ready") == "True"
            assert pod["metadata"]["annotations"]["cninfra.io/status"] == "OK"
        # Without the annotation: the pod as the Deployment made it.
        assert "initContainers" not in plain["spec"]
        assert [c["name"] for c in plain["spec"]["containers"]] == ["app"]
        assert "readinessGates" not in plain["spec"]
        assert "cninfra.io/sidecar" not in plain["metadata"].get("labels", {})

        # The kubelet probed both sidecars: startup, then liveness and readiness.
        def probed() -> dict[tuple[str, str, str], float] | None:
            counts = probe_counts(ns.cluster, apps.name)
            kinds = ("Startup", "Liveness", "Readiness")
            return counts if all(counts.get((SIDECAR, kind, "successful"), 0) >= 2
                                 for kind in kinds) else None
        counts = wait_until(probed, 60, "the kubelet's successful probes of both sidecars")
        assert not any(n for (c, kind, result), n in counts.items() if c == SIDECAR
                       and kind != "Startup" and result != "successful"), counts

        # The fleet, as the operator's notes say: port-forward to its Service, curl.
        names = {f"{apps.name}/{p['metadata']['name']}" for p in injected}
        with ns.port_forward(f"svc/{operator_chart.RELEASE}") as address:
            def listed() -> dict[str, Any] | None:
                view = _fleet(ns, address)
                mine = {a["label"]: a for a in view["agents"] if a["namespace"] == apps.name}
                ok = set(mine) == names and all(a["state_name"] == "OK" for a in mine.values())
                return view if ok else None
            view = wait_until(listed, 30, f"/fleet listing {sorted(names)} as OK")
            assert view["synced"] is True
            for agent in view["agents"]:
                if agent["label"] in names:
                    assert agent["reported"] is True and agent["phase"] == "Running"
                    assert agent["plugins"]["k8s"]["state"] == 1
            only_ok = _fleet(ns, address, "?state=OK")
            assert names <= {a["label"] for a in only_ok["agents"]}
            assert not [a for a in _fleet(ns, address, "?state=ERROR")["agents"]
                        if a["namespace"] == apps.name]

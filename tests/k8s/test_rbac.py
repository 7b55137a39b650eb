"""The chart's Role is what the sidecar runs with: enough for its work, nothing more."""

from __future__ import annotations

from pathlib import Path

from tests.k8s.cluster import PodEnv
from tests.packaging.render import chart_role
from tests.servers.kube import KubeApiServer


def test_the_chart_role_is_exactly_the_documented_rules() -> None:
    rules = {(tuple(r["apiGroups"]), tuple(sorted(r["resources"])), tuple(sorted(r["verbs"])))
             for r in chart_role("any")["rules"]}
    assert rules == {
        (("",), ("pods", "pods/status"), ("get", "patch")),
        (("",), ("configmaps",), ("get", "list", "watch")),
        (("",), ("events",), ("create",)),
    }


def test_what_the_sidecar_needs_is_allowed_and_the_rest_forbidden(
        kube_apiserver: KubeApiServer, tmp_path: Path) -> None:
    env = PodEnv(kube_apiserver, tmp_path)
    ns = env.namespace
    pod = f"/api/v1/namespaces/{ns}/pods/{env.pod_name}"
    env.put_configmap("programs", {"supervisor.conf": "programs: []\n"})
    kube_apiserver.request("POST", f"/api/v1/namespaces/{ns}/secrets", {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
        "stringData": {"password": "hunter2"}})

    allowed = {
        "read its Pod": env.as_sidecar("GET", pod),
        "patch its Pod's status": env.as_sidecar(
            "PATCH", pod + "/status", {"metadata": {"annotations": {"cninfra.io/x": "1"}}}),
        "read the programs ConfigMap": env.as_sidecar(
            "GET", f"/api/v1/namespaces/{ns}/configmaps/programs"),
        "list ConfigMaps (for the watch)": env.as_sidecar(
            "GET", f"/api/v1/namespaces/{ns}/configmaps?fieldSelector=metadata.name%3Dprograms"),
        "create an Event": env.as_sidecar("POST", f"/api/v1/namespaces/{ns}/events", {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "x.1"},
            "involvedObject": {"kind": "Pod", "name": env.pod_name, "namespace": ns},
            "reason": "Test", "message": "m", "type": "Normal"}),
    }
    for what, (status, body) in allowed.items():
        assert status in (200, 201), f"{what}: {status} {body}"

    forbidden = {
        "delete its Pod": env.as_sidecar("DELETE", pod),
        "read a Secret": env.as_sidecar("GET", f"/api/v1/namespaces/{ns}/secrets/db"),
        "list Secrets": env.as_sidecar("GET", f"/api/v1/namespaces/{ns}/secrets"),
        "list Pods": env.as_sidecar("GET", f"/api/v1/namespaces/{ns}/pods"),
        "change a ConfigMap": env.as_sidecar(
            "PATCH", f"/api/v1/namespaces/{ns}/configmaps/programs", {"data": {"x": "y"}}),
        "create a Pod": env.as_sidecar("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "evil"},
            "spec": {"containers": [{"name": "c", "image": "x"}]}}),
        "read Pods of another namespace": env.as_sidecar(
            "GET", "/api/v1/namespaces/default/pods"),
        "list namespaces": env.as_sidecar("GET", "/api/v1/namespaces"),
    }
    for what, (status, body) in forbidden.items():
        assert status == 403, f"{what}: {status} {body}"
    # Still there: the DELETE was refused, not merely slow.
    assert kube_apiserver.request("GET", pod)[0] == 200

"""A namespace of a real kube-apiserver set up the way the chart sets up a pod's sidecar.

The ServiceAccount, Role and RoleBinding come from the chart's own rendering
(``tests.packaging.kubeapply.install_chart_rbac``), so the sidecar under test
has exactly the chart's permissions. There is no kubelet: the Pod is an API
object, and the sidecar runs as a local process given its name and namespace
(what the Downward API would give it) and a kubeconfig with the
ServiceAccount's token (what the projected token volume would give it).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from sidecar.k8s import DETAIL_ANNOTATION, READY_CONDITION, STATUS_ANNOTATION
from tests._wait import wait_until
from tests.packaging.kubeapply import install_chart_rbac
from tests.packaging.render import chart_watched_configmap
from tests.servers.kube import KubeApiServer

__all__ = ["PodEnv", "pod_patches", "wait_for"]

T = TypeVar("T")


def pod_patches(api: KubeApiServer) -> int:
    """PATCHes of ``pods/status`` the apiserver has served, dry runs left out (its
    own metrics: an independent count of what the sidecar sent)."""
    status, text = api.request("GET", "/metrics")
    assert status == 200, text
    total = 0
    for line in str(text).splitlines():
        if (line.startswith("apiserver_request_total{") and 'verb="PATCH"' in line
                and 'resource="pods"' in line and 'subresource="status"' in line
                and 'dry_run=""' in line):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


class PodEnv:
    """One namespace with the chart's RBAC, a Pod object, and the sidecar's kubeconfig."""

    def __init__(self, api: KubeApiServer, directory: Path, pod: str = "app-0") -> None:
        self.api = api
        self.namespace = f"k8s-{uuid.uuid4().hex[:10]}"
        self.pod_name = pod
        self.directory = directory
        self.service_account = install_chart_rbac(api, self.namespace)
        #: The programs ConfigMap, as the chart names it: the only one the Role lets
        #: the sidecar read.
        self.programs_configmap = chart_watched_configmap()
        self.token = api.create_token(self.namespace, self.service_account,
                                      create_service_account=False)
        self.kubeconfig = api.write_kubeconfig(directory / "sidecar.kubeconfig", self.token,
                                               namespace=self.namespace)
        self.uid = self.create_pod(pod)

    # -- objects ------------------------------------------------------------------
    def create_pod(self, name: str) -> str:
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "demo"}},
            "spec": {
                "containers": [{"name": "app", "image": "example.invalid/app:1"}],
                "readinessGates": [{"conditionType": READY_CONDITION}],
            },
        }
        status, body = self.api.request("POST", f"/api/v1/namespaces/{self.namespace}/pods", pod)
        assert status == 201, body
        return str(body["metadata"]["uid"])

    def pod(self) -> dict[str, Any]:
        status, body = self.api.request(
            "GET", f"/api/v1/namespaces/{self.namespace}/pods/{self.pod_name}")
        assert status == 200, body
        return dict(body)

    def condition(self) -> dict[str, Any] | None:
        for condition in self.pod().get("status", {}).get("conditions") or ():
            if condition["type"] == READY_CONDITION:
                return dict(condition)
        return None

    def shown(self) -> tuple[str | None, str | None]:
        """(the status annotation, the condition's status) the Pod shows now."""
        pod = self.pod()
        annotations = pod["metadata"].get("annotations") or {}
        condition = next((c for c in pod.get("status", {}).get("conditions") or ()
                          if c["type"] == READY_CONDITION), None)
        return annotations.get(STATUS_ANNOTATION), condition["status"] if condition else None

    def detail(self) -> dict[str, Any]:
        annotations = self.pod()["metadata"].get("annotations") or {}
        return dict(json.loads(annotations[DETAIL_ANNOTATION]))

    def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        """Events about the Pod (matched by its uid, as ``kubectl describe`` does)."""
        selector = f"involvedObject.name={self.pod_name},involvedObject.uid={self.uid}"
        if reason:
            selector += f",reason={reason}"
        query = urllib.parse.urlencode({"fieldSelector": selector})
        status, body = self.api.request(
            "GET", f"/api/v1/namespaces/{self.namespace}/events?{query}")
        assert status == 200, body
        return sorted(body["items"], key=lambda e: e["metadata"]["name"])

    def put_configmap(self, name: str, data: dict[str, str]) -> None:
        """Create or replace a ConfigMap (as an admin would, with kubectl apply)."""
        path = f"/api/v1/namespaces/{self.namespace}/configmaps"
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                "data": data}
        status, out = self.api.request("PUT", f"{path}/{name}", body)
        if status == 404:
            status, out = self.api.request("POST", path, body)
        assert status in (200, 201), out

    def as_sidecar(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A request with the sidecar's ServiceAccount token (the chart's Role); a
        PATCH is a JSON merge patch."""
        if method != "PATCH":
            return self.api.request(method, path, body, token=self.token)
        req = urllib.request.Request(self.api.url + path, data=json.dumps(body).encode(),
                                     method="PATCH")
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", "application/merge-patch+json")
        try:
            with urllib.request.urlopen(req, context=self.api.ssl_context(), timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(errors="replace")

    # -- the sidecar's side ---------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """What the chart's Downward API env gives the sidecar container."""
        return {"POD_NAME": self.pod_name, "POD_NAMESPACE": self.namespace,
                "KUBERNETES_SERVICE_HOST": ""}

    def write_k8s_conf(self, config_dir: Path, **keys: Any) -> Path:
        """k8s.conf pointing at the ServiceAccount's kubeconfig, plus ``keys``
        (underscores become dashes; nested dicts as given)."""
        conf = {"kubeconfig": str(self.kubeconfig), "status": {"min-interval": "1s"}}
        for key, value in keys.items():
            conf[key.replace("_", "-")] = value
        path = config_dir / "k8s.conf"
        path.write_text(json.dumps(conf, indent=2))
        return path


def wait_for(condition: Callable[[], T | Literal[False] | None], timeout: float,
             what: str) -> T:
    """``wait_until`` at a pace for conditions that call the API server."""
    return wait_until(condition, timeout, what, interval=0.05)

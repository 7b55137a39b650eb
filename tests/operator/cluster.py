"""Namespaces and Pods on the operator tests' apiserver."""

from __future__ import annotations

import itertools
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tests.servers.kube import KubeApiServer

_ids = itertools.count()

Doc = dict[str, Any]


def namespace(api: KubeApiServer, prefix: str, labels: dict[str, str] | None = None) -> str:
    name = f"{prefix}-{next(_ids)}"
    status, out = api.request("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels or {}}})
    assert status == 201, out
    return name


def create_pod(api: KubeApiServer, ns: str, pod: Doc, *, dry_run: bool = False) -> tuple[int, Any]:
    query = "?dryRun=All" if dry_run else ""
    return api.request("POST", f"/api/v1/namespaces/{ns}/pods{query}", pod)


def created(api: KubeApiServer, ns: str, pod: Doc, *, dry_run: bool = False) -> Doc:
    status, out = create_pod(api, ns, pod, dry_run=dry_run)
    assert status == 201, out
    return dict(out)


def app_pod(name: str, annotations: dict[str, str] | None = None) -> Doc:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web"},
                         "annotations": annotations or {}},
            "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}}


def containers(pod: Doc) -> list[str]:
    spec = pod["spec"]
    return [c["name"] for c in spec.get("initContainers") or ()] + \
        [c["name"] for c in spec.get("containers") or ()]


def events(api: KubeApiServer, ns: str, uid: str, reason: str) -> list[Doc]:
    query = urllib.parse.urlencode(
        {"fieldSelector": f"involvedObject.uid={uid},reason={reason}"})
    status, out = api.request("GET", f"/api/v1/namespaces/{ns}/events?{query}")
    assert status == 200, out
    return list(out["items"])


def merge_patch(api: KubeApiServer, path: str, body: Doc) -> Doc:
    """A JSON merge patch with the admin token; the object the apiserver answers with."""
    request = urllib.request.Request(api.url + path, data=json.dumps(body).encode(),
                                     method="PATCH")
    request.add_header("Authorization", f"Bearer {api.admin_token}")
    request.add_header("Content-Type", "application/merge-patch+json")
    try:
        with urllib.request.urlopen(request, context=api.ssl_context(), timeout=10) as reply:
            return dict(json.loads(reply.read()))
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"PATCH {path}: {exc.code} {exc.read()!r}") from None

"""Server-side apply of rendered documents to a real kube-apiserver, over plain HTTP.

kubectl is not needed: the resource path of each kind comes from the
apiserver's discovery documents, and ``PATCH`` with
``application/apply-patch+yaml`` is what ``kubectl apply --server-side`` sends.
``dry_run=True`` adds ``dryRun=All``: the apiserver runs defaulting, validation
and admission (RBAC escalation checks, Pod Security) and stores nothing.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.packaging.render import chart_rbac
from tests.servers.kube import KubeApiServer

__all__ = ["ApplyError", "apply", "apply_one", "install_chart_rbac", "resource_path"]

FIELD_MANAGER = "cninfra-tests"


class ApplyError(AssertionError):
    """The apiserver refused a document; ``status`` and ``body`` are its answer."""

    def __init__(self, what: str, status: int, body: Any) -> None:
        message = body.get("message", body) if isinstance(body, dict) else body
        super().__init__(f"{what}: {status} {message}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class _Resource:
    plural: str
    namespaced: bool


_discovery: dict[tuple[str, str], dict[str, _Resource]] = {}


def _kinds(api: KubeApiServer, api_version: str) -> dict[str, _Resource]:
    key = (api.url, api_version)
    if key not in _discovery:
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        status, body = api.request("GET", path)
        if status != 200:
            raise ApplyError(f"discovery of {api_version}", status, body)
        _discovery[key] = {
            r["kind"]: _Resource(r["name"], r["namespaced"])
            for r in body["resources"] if "/" not in r["name"]  # not subresources
        }
    return _discovery[key]


def resource_path(api: KubeApiServer, doc: dict[str, Any], namespace: str) -> str:
    """The REST path of ``doc`` (its own namespace, else ``namespace``)."""
    api_version, kind = doc["apiVersion"], doc["kind"]
    resource = _kinds(api, api_version).get(kind)
    if resource is None:
        raise AssertionError(f"the apiserver serves no {kind} in {api_version}")
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    name = urllib.parse.quote(doc["metadata"]["name"], safe="")
    if resource.namespaced:
        ns = doc["metadata"].get("namespace") or namespace
        return f"{base}/namespaces/{ns}/{resource.plural}/{name}"
    return f"{base}/{resource.plural}/{name}"


def apply_one(
    api: KubeApiServer,
    doc: dict[str, Any],
    *,
    namespace: str,
    dry_run: bool = False,
    token: str | None = None,
    field_manager: str = FIELD_MANAGER,
) -> dict[str, Any]:
    """Server-side apply one document (with field validation Strict); returns
    the object the apiserver answers with, or raises ApplyError."""
    query = {"fieldManager": field_manager, "fieldValidation": "Strict", "force": "true"}
    if dry_run:
        query["dryRun"] = "All"
    url = api.url + resource_path(api, doc, namespace) + "?" + urllib.parse.urlencode(query)
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), method="PATCH")
    req.add_header("Authorization", f"Bearer {token or api.admin_token}")
    req.add_header("Content-Type", "application/apply-patch+yaml")  # JSON is YAML
    req.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(req, context=api.ssl_context(), timeout=30) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw.decode(errors="replace")
    if status not in (200, 201):
        what = f"{doc['kind']}/{doc['metadata']['name']}"
        raise ApplyError(what, status, body)
    return dict(body)


def apply(
    api: KubeApiServer,
    docs: Iterable[dict[str, Any]],
    *,
    namespace: str,
    dry_run: bool = False,
    token: str | None = None,
) -> list[dict[str, Any]]:
    """Apply ``docs`` in order into ``namespace`` (created first, for real, when
    missing); returns the apiserver's answers."""
    api.ensure_namespace(namespace)
    return [apply_one(api, doc, namespace=namespace, dry_run=dry_run, token=token)
            for doc in docs]


def install_chart_rbac(api: KubeApiServer, namespace: str, release: str = "cninfra-test") -> str:
    """Create the chart's ServiceAccount, Role and RoleBinding (default values)
    in ``namespace``, for real; returns the ServiceAccount's name. A process
    run with ``api.create_token(namespace, name, create_service_account=False)``
    then has exactly the sidecar's permissions."""
    docs = chart_rbac(namespace, release)
    apply(api, docs, namespace=namespace)
    return str(docs[0]["metadata"]["name"])

"""What injected pods need in their namespace, kept by the active replica: RBAC and ConfigMaps.

For every namespace with pods that carry the sidecar:

* a Role with the sidecar chart's rules (the injection spec's ``role-rules``)
  and a RoleBinding to the ServiceAccount of each such pod, whatever it is;
* copies of the spec's config and programs ConfigMaps (from the operator's
  namespace) where the pods mount them, kept equal to their source; a
  ConfigMap of that name that the operator did not make is left alone.

All of it goes when the last such pod does. Objects are written by
server-side apply and carry ``app.kubernetes.io/managed-by: cninfra-operator``;
only objects with that label are ever changed or deleted. What was applied is
remembered per namespace, so a pod event that changes nothing costs no request.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sidecar.inject import InjectionSpec, has_sidecar
from sidecar.inject.api import PROGRAMS_CONFIGMAP_ENV
from sidecar.k8s import ApiClient, ApiError

log = logging.getLogger("sidecar.operator")

MANAGER = "cninfra-operator"
MANAGED_BY = {"app.kubernetes.io/managed-by": MANAGER}
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=" + MANAGER
COPIED_FROM = "cninfra.io/copied-from"
APPLY_PATCH = "application/apply-patch+yaml"
_RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces"


@dataclass(frozen=True)
class PodNeeds:
    """What one pod with the sidecar needs in its namespace (the value of kopf's index)."""

    account: str
    #: The spec's ConfigMaps it mounts (copied from the operator's namespace).
    config_maps: frozenset[str]
    #: The programs ConfigMap its sidecar watches (the Role may name it).
    watched: str | None


def pod_needs(pod: Mapping[str, Any], spec: InjectionSpec) -> PodNeeds | None:
    pod_spec = pod.get("spec") or {}
    if not has_sidecar(pod_spec, spec):
        return None
    mounted = {(v.get("configMap") or {}).get("name") for v in pod_spec.get("volumes") or ()}
    sidecar = next(c for key in ("initContainers", "containers")
                   for c in pod_spec.get(key) or () if c.get("name") == spec.container_name)
    env = {e.get("name"): e.get("value") for e in sidecar.get("env") or ()}
    watched = env.get(PROGRAMS_CONFIGMAP_ENV) or (
        spec.programs_config_map if spec.programs_config_map in mounted else None)
    return PodNeeds(
        account=pod_spec.get("serviceAccountName") or pod_spec.get("serviceAccount")
        or "default",
        config_maps=frozenset(n for n in (spec.config_map, spec.programs_config_map)
                              if n and n in mounted),
        watched=watched)


@dataclass(frozen=True)
class Needs:
    accounts: tuple[str, ...]
    config_maps: tuple[str, ...]
    watched: tuple[str, ...]

    @classmethod
    def of(cls, pods: Iterable[PodNeeds]) -> Needs:
        pods = list(pods)
        return cls(tuple(sorted({p.account for p in pods})),
                   tuple(sorted({n for p in pods for n in p.config_maps})),
                   tuple(sorted({p.watched for p in pods if p.watched})))


class NamespaceKeeper:
    """Reconciles each namespace's Role, RoleBinding and ConfigMap copies to its pods' needs."""

    def __init__(self, spec: InjectionSpec, api: ApiClient, source_namespace: str) -> None:
        self._spec = spec
        self._api = api
        self._source = source_namespace
        self.name = f"{spec.container_name}-injected"
        self._applied: dict[str, Needs] = {}
        self._sources: dict[str, dict[str, Any]] = {}
        #: Namespaces reconciled (changes made) and objects deleted, for tests and logs.
        self.applied = 0
        self.removed = 0

    @property
    def namespaces(self) -> list[str]:
        """The namespaces it keeps objects in now."""
        return sorted(self._applied)

    async def reconcile(self, namespace: str, pods: Iterable[PodNeeds], *,
                        force: bool = False) -> None:
        needs = Needs.of(pods)
        if not force and self._applied.get(namespace, Needs((), (), ())) == needs:
            return  # (a namespace it never wrote to, and still nothing to write, included)
        if not needs.accounts:
            await self._remove(namespace)
            self._applied.pop(namespace, None)
            return
        if self._spec.role_rules:
            await self._apply(f"{_RBAC}/{namespace}/roles/{self.name}", self._role(needs))
            await self._apply(f"{_RBAC}/{namespace}/rolebindings/{self.name}",
                              self._binding(namespace, needs))
        for name in needs.config_maps:
            await self._copy(namespace, name)
        self._applied[namespace] = needs
        self.applied += 1
        log.info("namespace %s: RBAC for %s, ConfigMaps %s", namespace,
                 ", ".join(needs.accounts), ", ".join(needs.config_maps) or "none")

    def forget(self, namespace: str) -> None:
        """Make the next reconcile of ``namespace`` write (its objects changed under us)."""
        self._applied.pop(namespace, None)

    async def source_changed(self, name: str, source: Mapping[str, Any] | None) -> None:
        """A source ConfigMap changed: bring every copy of it up to date."""
        if source is None:
            self._sources.pop(name, None)
            return
        self._sources[name] = dict(source)
        for namespace, needs in list(self._applied.items()):
            if name in needs.config_maps:
                await self._copy(namespace, name)

    # -- objects -------------------------------------------------------------------------
    def _role(self, needs: Needs) -> dict[str, Any]:
        rules = []
        for rule in self._spec.role_rules:
            names: list[str] = rule.get("resourceNames") or []
            # The chart names the watched ConfigMap; pods may watch others (annotation).
            widen = self._spec.programs_config_map in names
            rules.append({**rule, "resourceNames": sorted({*names, *needs.watched})}
                         if widen else rule)
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": self.name, "labels": MANAGED_BY}, "rules": rules}

    def _binding(self, namespace: str, needs: Needs) -> dict[str, Any]:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": self.name, "labels": MANAGED_BY},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                            "name": self.name},
                "subjects": [{"kind": "ServiceAccount", "name": account,
                              "namespace": namespace} for account in needs.accounts]}

    async def _copy(self, namespace: str, name: str) -> None:
        if namespace == self._source:
            return  # the source itself
        path = f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        existing = await self._get(path)
        if existing is not None and not _managed(existing):
            return  # the namespace's own: never overwritten
        source = self._sources.get(name) or await self._get(
            f"/api/v1/namespaces/{self._source}/configmaps/{name}")
        if source is None:
            log.warning("namespace %s: ConfigMap %s/%s to copy does not exist", namespace,
                        self._source, name)
            return
        self._sources[name] = source
        copy: dict[str, Any] = {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": MANAGED_BY,
                         "annotations": {COPIED_FROM: f"{self._source}/{name}"}},
            "data": source.get("data") or {}}
        if source.get("binaryData"):
            copy["binaryData"] = source["binaryData"]
        if existing is not None and all(existing.get(k) == copy.get(k)
                                        for k in ("data", "binaryData")):
            return
        await self._apply(path, copy)

    async def _remove(self, namespace: str) -> None:
        paths = [f"{_RBAC}/{namespace}/rolebindings/{self.name}",
                 f"{_RBAC}/{namespace}/roles/{self.name}"]
        paths += [f"/api/v1/namespaces/{namespace}/configmaps/{name}"
                  for name in (self._spec.config_map, self._spec.programs_config_map) if name]
        for path in paths:
            existing = await self._get(path)
            if existing is None or not _managed(existing):
                continue
            uid = existing["metadata"]["uid"]
            try:
                await self._api.request("DELETE", path, {
                    "apiVersion": "v1", "kind": "DeleteOptions",
                    "preconditions": {"uid": uid}})
            except ApiError as exc:
                if exc.status not in (404, 409):
                    raise
            self.removed += 1
        log.info("namespace %s: no pod with the sidecar left; its RBAC and ConfigMaps removed",
                 namespace)

    async def _get(self, path: str) -> dict[str, Any] | None:
        try:
            return await self._api.request("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def _apply(self, path: str, body: dict[str, Any]) -> None:
        query = urllib.parse.urlencode({"fieldManager": MANAGER, "force": "true"})
        await self._api.request("PATCH", f"{path}?{query}", body, content_type=APPLY_PATCH)


def _managed(obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get("app.kubernetes.io/managed-by") == MANAGER

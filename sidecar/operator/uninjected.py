"""Pods that asked for the sidecar and went out without it: a Warning Event on each, a gauge.

With ``failurePolicy: Ignore`` the API server admits a pod uninjected when
the webhook cannot be reached (the operator down, its certificate not yet
trusted). The active replica sees every Pod (kopf's watch, listing included,
so pods created while it was away are found when it comes back) and reports
each such pod once: an Event ``SidecarNotInjected`` (named after the pod's
uid, so a restarted operator does not post it twice) and the gauge
``cninfra_operator_pods_not_injected``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime
from typing import Any

from sidecar.inject import InjectError, InjectionSpec, api, has_sidecar
from sidecar.inject.mutation import inject_value
from sidecar.k8s import ApiClient, ApiError

log = logging.getLogger("sidecar.operator")

REASON = "SidecarNotInjected"
COMPONENT = "cninfra-operator"


def asked(pod: Mapping[str, Any], namespace_labels: Mapping[str, str]) -> bool:
    """Whether the pod asked for the sidecar (its annotation, else its namespace's label)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        own = inject_value(annotations.get(api.INJECT))
        if own is not None:
            return own
        return bool(inject_value(namespace_labels.get(api.INJECT), "namespace label "
                                 + api.INJECT))
    except InjectError:
        return False  # such a pod was denied, or admitted by no webhook of ours


class UninjectedPods:
    """Tracks the pods without the sidecar they asked for; posts one Event for each."""

    def __init__(self, spec: InjectionSpec, api_client: Callable[[], ApiClient | None],
                 excluded_namespaces: AbstractSet[str]) -> None:
        self._spec = spec
        self._api = api_client
        self._excluded = excluded_namespaces
        #: uid -> namespace of each such pod now.
        self.pods: dict[str, str] = {}
        self.events_posted = 0
        self._reported: set[str] = set()

    def count(self) -> dict[str, int]:
        """Pods by namespace."""
        out: dict[str, int] = {}
        for namespace in self.pods.values():
            out[namespace] = out.get(namespace, 0) + 1
        return out

    async def on_event(self, event_type: str | None, pod: Mapping[str, Any],
                       namespace_labels: Mapping[str, str]) -> None:
        meta = pod.get("metadata") or {}
        uid, namespace = str(meta.get("uid") or ""), str(meta.get("namespace") or "")
        if not uid:
            return
        missing = (event_type != "DELETED" and namespace not in self._excluded
                   and asked(pod, namespace_labels)
                   and not has_sidecar(pod.get("spec") or {}, self._spec))
        if not missing:
            self.pods.pop(uid, None)
            self._reported.discard(uid)
            return
        self.pods[uid] = namespace
        if uid not in self._reported and await self._post(pod):
            self._reported.add(uid)

    async def _post(self, pod: Mapping[str, Any]) -> bool:
        client = self._api()
        if client is None:
            return False
        meta = pod["metadata"]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = ("the pod asked for the cninfra sidecar but was created without it (the "
                   "injection webhook could not be reached, and its failurePolicy is "
                   "Ignore); delete the pod to have it re-created with the sidecar")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{meta['uid']}.not-injected",
                         "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "type": "Warning", "reason": REASON, "message": message,
            "source": {"component": COMPONENT}, "reportingComponent": COMPONENT,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            await client.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", event)
        except ApiError as exc:
            if exc.status == 409:  # posted before (by this replica's predecessor)
                return True
            log.warning("cannot post the %s Event on pod %s/%s: %s", REASON,
                        meta["namespace"], meta["name"], exc)
            return False
        self.events_posted += 1
        log.warning("pod %s/%s asked for the sidecar and runs without it", meta["namespace"],
                    meta["name"])
        return True

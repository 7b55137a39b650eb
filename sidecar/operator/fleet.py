"""The fleet view without etcd: every sidecar's state, from the annotations it writes on its Pod.

Every sidecar with the k8s plugin mirrors its aggregated state onto its own
Pod (``cninfra.io/status``, ``cninfra.io/status-detail``: see
sidecar/k8s/podstatus.py). The operator lists and watches the Pods that
carry a sidecar (label ``cninfra.io/sidecar``, which the chart and the
injector put on them), keeps one status document per Pod in a NamedMapping
indexed by state, and serves it with the etcd fleet view's own code
(:class:`sidecar.fleet.FleetView`): the same ``/fleet`` JSON, the same
``?state=`` filter, the same ``cninfra_fleet_*`` metrics. Every replica
follows the Pods (peering pauses kopf's handlers, not this watch), so any of
them answers.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Mapping
from typing import Any

from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.fleet import AgentStatusDoc, by_state, decode_agent_status
from sidecar.health.statuscheck.api import PluginState
from sidecar.idxmap import NamedMapping
from sidecar.k8s import DETAIL_ANNOTATION, STATUS_ANNOTATION, ApiClient, ApiError

log = logging.getLogger("sidecar.operator")

#: Pods with a sidecar carry this label (the chart's podLabels, also on injected pods).
SIDECAR_LABEL = "cninfra.io/sidecar"
_WATCH_SECONDS = 300
_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)


def label_of(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"


def pod_status(pod: Mapping[str, Any]) -> tuple[AgentStatusDoc, bool]:
    """The Pod's status document, and whether its annotations could be read. A sidecar that
    has not written them yet shows as INIT with ``reported`` false."""
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    doc: AgentStatusDoc = {
        "namespace": meta.get("namespace"), "pod": meta.get("name"),
        "node": (pod.get("spec") or {}).get("nodeName"),
        "phase": (pod.get("status") or {}).get("phase"),
        "state": int(PluginState.INIT), "reported": False,
    }
    detail, name = annotations.get(DETAIL_ANNOTATION), annotations.get(STATUS_ANNOTATION)
    try:
        if detail:
            status = decode_agent_status(detail)
            doc.update({"state": status["state"], "last_change": status.get("last_change"),
                        "plugins": status.get("plugins") or {}, "reported": True})
        elif name:
            doc.update({"state": int(PluginState[name]), "reported": True})
    except (ValueError, TypeError, KeyError):
        return doc, False
    return doc, True


class PodFleet:
    """Lists and watches the sidecars' Pods into :attr:`agents` (a task: ``operator-fleet``)."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api
        self.agents: NamedMapping[AgentStatusDoc] = NamedMapping("fleet", by_state)
        self._task: asyncio.Task[None] | None = None
        self._synced = False
        self._revision: int | None = None
        self._resource_version: str | None = None
        self.last_error: str | None = None
        self.resyncs = 0
        self.resumes = 0
        self.compactions = 0
        self.events = 0
        self.decode_errors = 0

    # -- FleetSource ------------------------------------------------------------------
    @property
    def synced(self) -> bool:
        return self._synced

    @property
    def revision(self) -> int | None:
        return self._revision

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = spawn(self._run(), "operator-fleet")

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self.agents.close()

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                if self._resource_version is None:
                    await self._list()
                elif failures:
                    self.resumes += 1
                await self._watch()
                failures = 0
            except ApiError as exc:
                self._synced = False
                self.last_error = str(exc)
                if exc.status == 410:  # the watch's history is gone: read everything again
                    self.compactions += 1
                    self._resource_version = None
                    continue
                log.warning("fleet view: %s", exc)
                await asyncio.sleep(_BACKOFF[min(failures, len(_BACKOFF) - 1)])
                failures += 1

    async def _list(self) -> None:
        selector = urllib.parse.quote(SIDECAR_LABEL)
        answer = await self._api.request("GET", f"/api/v1/pods?labelSelector={selector}")
        seen = set()
        for pod in answer.get("items") or ():
            seen.add(self._put(pod))
        for name in set(self.agents.list_all_names()) - seen:
            self.agents.delete(name)
        self.resyncs += 1
        self._advance(str((answer.get("metadata") or {}).get("resourceVersion") or "0"))
        self._synced = True
        self.last_error = None

    async def _watch(self) -> None:
        query = urllib.parse.urlencode({
            "watch": "1", "labelSelector": SIDECAR_LABEL, "allowWatchBookmarks": "true",
            "resourceVersion": self._resource_version, "timeoutSeconds": str(_WATCH_SECONDS)})
        async for event in self._api.stream(f"/api/v1/pods?{query}",
                                            read_timeout=_WATCH_SECONDS + 30):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                raise ApiError("WATCH", "/api/v1/pods", int(obj.get("code") or 0),
                               str(obj.get("message") or "watch error"))
            if kind in ("ADDED", "MODIFIED"):
                self._put(obj)
            elif kind == "DELETED":
                self.agents.delete(label_of(obj))
            if kind != "BOOKMARK":
                self.events += 1
            self._advance(str((obj.get("metadata") or {}).get("resourceVersion") or ""))
            self._synced = True
            self.last_error = None

    def _put(self, pod: Mapping[str, Any]) -> str:
        label = label_of(pod)
        doc, readable = pod_status(pod)
        if not readable:
            self.decode_errors += 1
            log.debug("fleet view: pod %s has unreadable status annotations", label)
        if self.agents.get_value(label) != doc:
            self.agents.put(label, doc)
        return label

    def _advance(self, resource_version: str) -> None:
        if not resource_version:
            return
        self._resource_version = resource_version
        if resource_version.isdigit():
            self._revision = int(resource_version)
        else:  # opaque to clients in principle; a count keeps it moving
            self._revision = (self._revision or 0) + 1


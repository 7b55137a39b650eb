"""The state on the sidecar's own Pod: annotations and a readiness-gate condition.

The annotations show the agent state (the AND of every plugin) in full; the
``cninfra.io/ready`` condition follows the readiness group, exactly as
``/readiness`` does, so that the readiness gate and the probe never disagree.

One strategic-merge PATCH of ``pods/<name>/status`` carries both the
annotations (``metadata`` is writable through the status subresource) and
the ``cninfra.io/ready`` condition (merged by its ``type``, so the kubelet's
conditions are left alone). Writes are coalesced and rate-limited: the first
change after a quiet spell goes out at once, later ones wait until
``min-interval`` after the previous PATCH and go out as one write of the
latest state. A failed write is retried with backoff; nothing here ever
blocks a probe or a plugin, it only reads the status check's state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.health.statuscheck import READINESS, AgentStatus, PluginState, StatusReader

from ._api import STRATEGIC_MERGE, ApiClient, pod_path
from ._health import ApiHealth
from .config import PodStatusConfig
from .errors import ApiError

log = logging.getLogger("sidecar.k8s")

STATUS_ANNOTATION = "cninfra.io/status"
DETAIL_ANNOTATION = "cninfra.io/status-detail"
READY_CONDITION = "cninfra.io/ready"
#: Kubernetes caps a condition message at 32 KiB; keep the Pod readable far below that.
MAX_MESSAGE = 1024
_MAX_ERROR = 256
_MIN_BACKOFF = 0.2

#: The condition's reason: the readiness group's state.
_REASONS = {PluginState.OK: "ReadinessOK", PluginState.INIT: "ReadinessStarting",
            PluginState.ERROR: "ReadinessError"}


@dataclass(frozen=True)
class PodRef:
    """The sidecar's own Pod."""

    namespace: str
    name: str
    uid: str | None = None


@dataclass(frozen=True)
class PodStatus:
    """What the Pod shows: the annotations and the condition (empty when not written)."""

    state: str = ""
    detail: str = ""
    ready: bool | None = None
    reason: str = ""
    message: str = ""
    #: The agent state in a line, for Events (the Pod does not store it: never compared).
    summary: str = field(default="", compare=False)

    @classmethod
    def of(cls, status: AgentStatus) -> PodStatus:
        """The Pod's view of an agent status (no ``last_update``: it must not churn)."""
        plugins: dict[str, Any] = {}
        for name, plugin in sorted(status.plugins.items()):
            entry: dict[str, Any] = {"state": int(plugin.state), "last_change": plugin.last_change}
            if plugin.error:
                entry["error"] = _clip(plugin.error, _MAX_ERROR)
            plugins[name] = entry
        detail = json.dumps({"state": int(status.state), "last_change": status.last_change,
                             "plugins": plugins}, separators=(",", ":"))
        group = status.groups.get(READINESS)
        counted = status.plugins.keys() if group is None else group.counted
        state = status.state if group is None else group.state
        in_grace = {} if group is None else group.in_grace
        message = _describe(status, state, [n for n in counted if n not in in_grace])
        if group is not None:
            if in_grace:
                message += "; within their grace: " + _failing(status, list(in_grace))
            left_out = [n for n in group.left_out if status.plugins[n].state is PluginState.ERROR]
            if left_out:
                message += "; not counted: " + _failing(status, left_out)
        return cls(state=status.state.name, detail=detail, ready=status.ready,
                   reason=_REASONS[state], message=_clip(message, MAX_MESSAGE),
                   summary=_clip(_describe(status, status.state, list(status.plugins)),
                                 MAX_MESSAGE))

    @classmethod
    def from_pod(cls, pod: Mapping[str, Any]) -> PodStatus:
        """What a Pod object shows now."""
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        shown = cls(state=annotations.get(STATUS_ANNOTATION, ""),
                    detail=annotations.get(DETAIL_ANNOTATION, ""))
        condition = find_condition(pod)
        if condition is not None:
            shown = replace(shown, ready=condition.get("status") == "True",
                            reason=condition.get("reason") or "",
                            message=condition.get("message") or "")
        return shown

    def limited_to(self, config: PodStatusConfig) -> PodStatus:
        """Only the parts that ``config`` writes (so that the rest is never compared)."""
        shown = self
        if not config.annotations:
            shown = replace(shown, state="", detail="")
        if not config.condition:
            shown = replace(shown, ready=None, reason="", message="")
        return shown


def _failing(status: AgentStatus, names: list[str]) -> str:
    return "; ".join(f"{n}: {status.plugins[n].error or 'ERROR'}" for n in sorted(names))


def _describe(status: AgentStatus, state: PluginState, names: list[str]) -> str:
    """A line about ``names`` (all plugins or a group's) in the ``state`` they add up to."""
    plugins = {n: status.plugins[n] for n in names}
    if state is PluginState.ERROR:
        return _failing(status, [n for n, p in plugins.items() if p.state is PluginState.ERROR])
    if state is PluginState.INIT:
        starting = sorted(n for n, p in plugins.items() if p.state is PluginState.INIT)
        return ("waiting for " + ", ".join(starting)) if starting else "starting"
    return f"all {len(plugins)} plugins are OK"


def find_condition(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == READY_CONDITION:
            return dict(condition)
    return None


def patch_body(desired: PodStatus, transition_time: str) -> dict[str, Any]:
    """The strategic-merge patch that makes the Pod show ``desired``."""
    body: dict[str, Any] = {}
    if desired.state:
        body["metadata"] = {"annotations": {STATUS_ANNOTATION: desired.state,
                                            DETAIL_ANNOTATION: desired.detail}}
    if desired.ready is not None:
        body["status"] = {"conditions": [{
            "type": READY_CONDITION,
            "status": "True" if desired.ready else "False",
            "reason": desired.reason,
            "message": desired.message,
            "lastTransitionTime": transition_time,
        }]}
    return body


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(int(seconds), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Called after each successful write with what the Pod showed before and shows now.
WrittenCallback = Callable[[PodStatus, PodStatus], None]


class PodStatusWriter:
    """Mirrors a status reader onto the Pod in a background task (``k8s-pod-status``)."""

    def __init__(self, api: ApiClient, pod: PodRef, status: StatusReader,
                 config: PodStatusConfig, health: ApiHealth, *,
                 on_written: WrittenCallback | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._api = api
        self._pod = pod
        self._status = status
        self._config = config
        self._health = health
        self._on_written = on_written
        self._clock = clock
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._shown = PodStatus()
        self._transition_time = ""
        #: Successful PATCHes, failed ones, and the last failure.
        self.patches = 0
        self.failures = 0
        self.last_error: str | None = None

    @property
    def shown(self) -> PodStatus:
        """What the Pod showed after the last successful write (or when first read)."""
        return self._shown

    def start(self, pod: Mapping[str, Any]) -> None:
        """Start writing; ``pod`` is the Pod object as just read (what it shows now)."""
        if self._task is not None:
            return
        self._shown = PodStatus.from_pod(pod).limited_to(self._config)
        condition = find_condition(pod)
        if condition is not None:
            self._transition_time = condition.get("lastTransitionTime") or ""
        self._status.add_listener(self._dirty.set)
        self._dirty.set()
        self._task = spawn(self._run(), "k8s-pod-status",
                           on_crash=lambda exc: self._health.crashed("the Pod status writer", exc))

    def _desired(self) -> PodStatus:
        return PodStatus.of(self._status.agent_status()).limited_to(self._config)

    async def _run(self) -> None:
        last_attempt = -float("inf")
        backoff = _MIN_BACKOFF
        while True:
            await self._dirty.wait()
            # Changes arriving during this wait coalesce into the one write below.
            hold = last_attempt + self._config.min_interval - time.monotonic()
            if hold > 0:
                await asyncio.sleep(hold)
            self._dirty.clear()
            if self._desired() == self._shown:
                continue
            last_attempt = time.monotonic()
            try:
                await self._write()
            except ApiError as exc:
                self.failures += 1
                self.last_error = str(exc)
                self._health.failed(exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._config.max_backoff)
                self._dirty.set()
                continue
            backoff = _MIN_BACKOFF

    async def _write(self) -> None:
        if self._health.failing:
            # Back from a failure: try the write as a dry run first, so that what
            # is then written no longer carries the k8s plugin's own (past) error.
            # An API server that is coming back may refuse for a while (403 until
            # its caches sync): the dry run exercises exactly the permission needed.
            await self._patch(self._desired(), dry_run=True)
            self._health.ok()
        desired = self._desired()
        if desired == self._shown:
            return
        transition = await self._patch(desired)
        self.patches += 1
        previous, self._shown, self._transition_time = self._shown, desired, transition
        level = logging.INFO if previous.state != desired.state else logging.DEBUG
        log.log(level, "Pod %s/%s shows %s", self._pod.namespace, self._pod.name,
                desired.state or ("ready" if desired.ready else "not ready"))
        self._health.ok()
        if self._on_written is not None:
            try:
                self._on_written(previous, desired)
            except Exception:
                log.exception("Pod status callback failed")

    async def _patch(self, desired: PodStatus, *, dry_run: bool = False) -> str:
        """PATCH the Pod's status to show ``desired``; returns the condition's transition time."""
        transition = self._transition_time
        if desired.ready is not None and (desired.ready != self._shown.ready or not transition):
            transition = _rfc3339(self._clock())
        path = pod_path(self._pod.namespace, self._pod.name, "status")
        await self._api.request("PATCH", path + "?dryRun=All" if dry_run else path,
                                patch_body(desired, transition), content_type=STRATEGIC_MERGE)
        return transition

    async def close(self) -> None:
        if self._task is None:
            return
        self._status.remove_listener(self._dirty.set)
        task, self._task = self._task, None
        await cancel_and_wait(task)

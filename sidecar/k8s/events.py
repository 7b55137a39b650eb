"""Events on the sidecar's own Pod, rate-limited, posted in the background.

``kubectl describe pod`` lists them: overall state changes, program crashes
and restarts, ConfigMaps applied or rejected. A token bucket per reason
(``burst``, then ``per-minute``) bounds what one pod can post: a crash-looping
program must not flood the API server of a cluster with thousands of pods,
nor use up the allowance of the rarer, more telling Events (``AgentError``,
``ConfigMapRejected``). Events over the limit are dropped and counted; so are
Events the API server refuses (they are best effort, like the kubelet's).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.tokenbucket import TokenBucket as SharedTokenBucket

from ._api import ApiClient
from .config import EventsConfig
from .errors import ApiError
from .podstatus import PodRef

log = logging.getLogger("sidecar.k8s")

COMPONENT = "cninfra-sidecar"
MAX_MESSAGE = 1024
_QUEUE_SIZE = 100
_ATTEMPTS = 3

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class PodEvent:
    type: EventType
    reason: str
    message: str
    #: Unix time in nanoseconds, unique per recorder (it names the Event).
    time_ns: int


class TokenBucket(SharedTokenBucket):
    """``burst`` tokens, refilled at ``per_minute`` a minute."""

    def __init__(self, per_minute: int, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(per_minute / 60.0, burst, clock)


class EventRecorder:
    """Queues Events for the Pod; a task (``k8s-events``) posts them."""

    def __init__(self, api: ApiClient, config: EventsConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._api = api
        self._config = config
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._queue: asyncio.Queue[PodEvent] = asyncio.Queue(_QUEUE_SIZE)
        self._pod: PodRef | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_ns = 0
        #: Events created, dropped by the rate limit (or a full queue), refused or lost.
        self.posted = 0
        self.dropped = 0
        self.failed = 0

    def post(self, type: EventType, reason: str, message: str) -> bool:
        """Queue an Event; False when the rate limit (or a closed recorder) dropped it."""
        if self._closed or not self._config.enabled:
            return False
        bucket = self._buckets.get(reason)
        if bucket is None:
            bucket = self._buckets[reason] = TokenBucket(
                self._config.per_minute, self._config.burst, self._clock)
        if not bucket.take():
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.info("Event %s dropped by the rate limit (%d so far)", reason, self.dropped)
            return False
        self._last_ns = max(time.time_ns(), self._last_ns + 1)
        event = PodEvent(type, reason, _clip(message), self._last_ns)
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def start(self, pod: PodRef) -> None:
        """Post queued and future Events about ``pod`` (its uid makes them show in describe)."""
        self._pod = pod
        if self._task is None and not self._closed:
            self._task = spawn(self._run(pod), "k8s-events")

    async def _run(self, pod: PodRef) -> None:
        path = f"/api/v1/namespaces/{pod.namespace}/events"
        while True:
            event = await self._queue.get()
            for attempt in range(1, _ATTEMPTS + 1):
                try:
                    await self._api.request("POST", path, event_body(pod, event))
                except ApiError as exc:
                    if exc.retryable and attempt < _ATTEMPTS:
                        await asyncio.sleep(attempt)
                        continue
                    self.failed += 1
                    log.warning("Event %s not posted: %s", event.reason, exc)
                else:
                    self.posted += 1
                break

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        await cancel_and_wait(task)


def event_body(pod: PodRef, event: PodEvent) -> dict[str, Any]:
    """A core/v1 Event about ``pod`` (named like client-go's: ``<pod>.<unix nanos hex>``)."""
    seconds = event.time_ns // 1_000_000_000
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "namespace": pod.namespace,
                                "name": pod.name}
    if pod.uid:
        involved["uid"] = pod.uid
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod.name}.{event.time_ns:x}",
                     "namespace": pod.namespace},
        "involvedObject": involved,
        "type": event.type,
        "reason": event.reason,
        "message": event.message,
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": pod.name,
    }


def _clip(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 3] + "..."

"""Status events to Kafka: every change of the agent's overall state, and every event
handed to ``publish_event`` (the supervisor's program events), as one JSON record
keyed by the service label, so that a fleet can be watched with a plain consumer.

Records wait in a bounded backlog while Kafka is unreachable (an outage of
Kafka is itself such a change) and go out in order once it is back. Delivery
is at least once: a record whose write failed half-way (the broker stored it,
the answer was lost) is written again. Each record carries ``instance`` (one
per sidecar process) and ``seq`` (1, 2, ... in that process) so that a
consumer can drop such repeats and notice gaps (records dropped from a full
backlog).

    {"type":"agent-state","agent":"demo","instance":"5f0c2a9e41b7","seq":7,
     "time":1764064861.2,"previous_state":1,"build_version":...,"state":2,...,
     "plugins":{"kafka":{"state":2,"error":"..."}}}
    {"type":"program","agent":"demo","instance":"5f0c2a9e41b7","seq":8,
     "time":1764064870.5,"program":"web","state":"running",...}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.health.statuscheck.api import PluginState, StatusReader

from .errors import KafkaMessagingError, describe
from .mux import Multiplexer

log = logging.getLogger("sidecar.kafka")


class StatusEvents:
    def __init__(self, mux: Multiplexer, topic: str, agent: str,
                 status: StatusReader | None = None, *, backlog: int = 1000) -> None:
        self.topic = topic
        self.agent = agent
        self._mux = mux
        self._status = status
        self._backlog: deque[bytes] = deque()
        self._limit = backlog
        self._dropped = 0
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._last_state: PluginState | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        #: Tells this process's records from those of the sidecar's earlier runs.
        self.instance = uuid.uuid4().hex[:12]
        self._seq = 0

    @property
    def dropped(self) -> int:
        """Records dropped from a full backlog (the oldest go first)."""
        return self._dropped

    @property
    def waiting(self) -> int:
        """Records in the backlog, not written yet."""
        return len(self._backlog)

    @property
    def limit(self) -> int:
        """The backlog's size (``status-backlog``)."""
        return self._limit

    def start(self) -> None:
        if self._status is not None:
            self._status.add_listener(self._status_changed)
            self._status_changed()
        if self._task is None:
            self._task = spawn(self._send_loop(), "kafka-status-events")

    def publish_event(self, event: Mapping[str, Any]) -> None:
        """Queue ``event`` (for example a supervisor program event) for the status topic.

        Never blocks and never raises for Kafka's sake: the record is written
        once Kafka is reachable. ``type`` defaults to ``program``.
        """
        self._enqueue({"type": "program", "time": time.time(), **event})

    def _status_changed(self) -> None:
        assert self._status is not None
        status = self._status.agent_status()
        if status.state is self._last_state:
            return
        previous, self._last_state = self._last_state, status.state
        self._enqueue({"type": "agent-state", "time": time.time(),
                       "previous_state": None if previous is None else int(previous),
                       **status.to_dict()})

    def _enqueue(self, fields: Mapping[str, Any]) -> None:
        self._seq += 1
        record = {"agent": self.agent, "instance": self.instance, "seq": self._seq, **fields}
        record["instance"], record["seq"] = self.instance, self._seq  # never from ``fields``
        self._backlog.append(json.dumps(record, separators=(",", ":"), default=str).encode())
        if len(self._backlog) > self._limit:
            self._backlog.popleft()
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 100 == 0:
                log.warning("kafka status events: backlog full, %d record(s) dropped",
                            self._dropped)
        self._drained.clear()
        self._wakeup.set()

    async def _send_loop(self) -> None:
        backoff = 0.2
        failing = False
        while True:
            if not self._backlog:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if not self._mux.started:
                await asyncio.sleep(0.2)
                continue
            try:
                await self._mux.sync_producer.send(self.topic, self._backlog[0], key=self.agent)
            except KafkaMessagingError as exc:
                if not failing:
                    log.warning("kafka status events: cannot write to %s (will retry): %s",
                                self.topic, describe(exc))
                failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            self._backlog.popleft()
            self.sent += 1
            if not self._backlog:
                self._drained.set()
            failing, backoff = False, 0.2

    async def close(self, grace: float = 2.0) -> None:
        """Give queued records ``grace`` s to go out, then stop."""
        if self._status is not None:
            self._status.remove_listener(self._status_changed)
        task, self._task = self._task, None
        if task is None:
            return
        if self._mux.started:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._drained.wait()
        await cancel_and_wait(task)
        if self._backlog:
            log.warning("kafka status events: %d record(s) not written at close",
                        len(self._backlog))

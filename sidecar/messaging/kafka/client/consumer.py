"""Consumers: a member of a consumer group, and a reader of one partition from an offset.

Offsets of the group consumer are committed only when marked
(``mark_offset``), never automatically on receipt: a message whose handler
did not mark it is read again after a restart or a rebalance (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from sidecar.agent.tasks import cancel_and_wait, spawn

from ..errors import ClientClosedError, KafkaUnavailableError, SubscriptionError, describe
from .config import ClientConfig
from .message import OFFSET_NEWEST, OFFSET_OLDEST, ConsumerMessage, MessageHandler

log = logging.getLogger("sidecar.kafka")

TopicPartition = tuple[str, int]
RevokedCallback = Callable[[set[TopicPartition]], None]


async def _handle(handler: MessageHandler, message: ConsumerMessage, name: str) -> None:
    try:
        result = handler(message)
        if inspect.isawaitable(result):
            await result
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s: the handler of %s[%d]@%d failed", name, message.topic,
                      message.partition, message.offset)


async def _fetch_loop(consumer: Any, handler: MessageHandler, name: str,
                      convert: Callable[[Any], ConsumerMessage]) -> None:
    backoff = 0.1
    while True:
        try:
            batches = await consumer.getmany(timeout_ms=1000)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - aiokafka reconnects; we keep polling
            if type(exc).__name__ == "ConsumerStoppedError":
                return
            log.warning("%s: fetch failed: %s", name, describe(exc))
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
            continue
        backoff = 0.1
        for records in batches.values():
            for record in records:
                await _handle(handler, convert(record), name)


class _Base:
    def __init__(self, config: ClientConfig, handler: MessageHandler, name: str) -> None:
        self.config = config
        self.name = name
        self._handler = handler
        self._consumer: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    @property
    def started(self) -> bool:
        return self._consumer is not None

    async def _open(self, consumer: Any, after_start: Callable[[Any], Awaitable[None]]) -> None:
        try:
            await consumer.start()
            await after_start(consumer)
        except BaseException as exc:
            await self._stop_consumer(consumer)
            if isinstance(exc, SubscriptionError) or not isinstance(exc, Exception):
                raise
            raise KafkaUnavailableError(
                f"{self.name}: cannot consume from {self.config.bootstrap}: {describe(exc)}"
            ) from exc
        self._consumer = consumer

    async def _stop_consumer(self, consumer: Any) -> None:
        """Stop the aiokafka consumer; its errors are of no use once it is dropped."""
        from . import _aio

        with contextlib.suppress(Exception):
            await _aio.stop_consumer(consumer)

    def _spawn(self, coro: Coroutine[Any, Any, None], suffix: str) -> None:
        self._tasks.append(spawn(coro, f"{self.name}-{suffix}"))

    async def _cancel_tasks(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            if task.done():
                continue  # one that died was logged by spawn then
            try:
                await cancel_and_wait(task)
            except Exception:  # the stop goes on: the aiokafka consumer must be closed
                log.exception("%s: task %s failed as it stopped", self.name, task.get_name())


class Consumer(_Base):
    """One member of consumer group ``group_id`` reading ``topics``.

    ``handler`` gets every message in partition order (a coroutine handler is
    awaited before the next message). Offsets are committed only after
    ``mark_offset``: every ``commit_interval``, on ``commit()``, when a
    partition is taken away by a rebalance, and on ``stop()``.
    """

    def __init__(self, config: ClientConfig, group_id: str, handler: MessageHandler, *,
                 on_revoked: RevokedCallback | None = None,
                 name: str = "kafka-consumer") -> None:
        super().__init__(config, handler, name)
        if not group_id:
            raise ValueError("a consumer group id must not be empty")
        self.group_id = group_id
        self._on_revoked = on_revoked
        self._topics: frozenset[str] = frozenset()
        self._marks: dict[TopicPartition, tuple[int, str]] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._assigned: set[TopicPartition] = set()
        self._commit_lock = asyncio.Lock()

    @property
    def topics(self) -> frozenset[str]:
        return self._topics

    @property
    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this member reads now."""
        return frozenset(self._assigned)

    async def start(self, topics: Iterable[str]) -> None:
        """Join the group; returns once partitions are assigned. KafkaUnavailableError."""
        if self._closed:
            raise ClientClosedError(f"{self.name}: the consumer is closed")
        if self._consumer is not None:
            return
        topic_set = frozenset(topics)
        if not topic_set:
            raise ValueError("a group consumer needs at least one topic")
        from . import _aio

        consumer = _aio.AIOKafkaConsumer(
            **_aio.common_kwargs(self.config),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self.config.initial_offset == "oldest" else "latest",
            session_timeout_ms=int(self.config.session_timeout * 1000),
            heartbeat_interval_ms=max(100, int(self.config.session_timeout * 1000 / 3)),
            max_partition_fetch_bytes=max(1_048_576, self.config.max_message_bytes),
        )
        consumer.subscribe(sorted(topic_set), listener=self._listener())

        async def nothing(_consumer: Any) -> None:
            return None

        await self._open(consumer, nothing)
        self._topics = topic_set
        self._spawn(_fetch_loop(consumer, self._handler, self.name, _aio.consumer_message),
                    "fetch")
        self._spawn(self._commit_loop(), "commit")

    def subscribe(self, topics: Iterable[str]) -> None:
        """Change the topics of a started consumer (the group rebalances)."""
        topic_set = frozenset(topics)
        if not topic_set:
            raise ValueError("a group consumer needs at least one topic; stop() it instead")
        if self._consumer is None:
            raise KafkaUnavailableError(f"{self.name}: not started")
        if topic_set != self._topics:
            self._consumer.subscribe(sorted(topic_set), listener=self._listener())
            self._topics = topic_set

    def mark_offset(self, topic: str, partition: int, offset: int, metadata: str = "") -> None:
        """Mark the message at ``offset`` as handled: the group resumes after it."""
        key = (topic, partition)
        current = self._marks.get(key)
        # Never move a mark backwards: an older mark arriving late must not cause a replay.
        if current is None or offset + 1 >= current[0]:
            self._marks[key] = (offset + 1, metadata)

    async def commit(self) -> None:
        """Commit the marked offsets of the partitions this member holds."""
        consumer = self._consumer
        if consumer is None:
            raise KafkaUnavailableError(f"{self.name}: not started")
        await self._commit(consumer, self._assigned)

    async def _commit(self, consumer: Any, partitions: set[TopicPartition]) -> None:
        from . import _aio

        async with self._commit_lock:
            offsets = {
                _aio.TopicPartition(*tp): mark
                for tp, mark in self._marks.items()
                if tp in partitions and self._committed.get(tp) != mark[0]
            }
            if not offsets:
                return
            try:
                await consumer.commit(offsets)
            except Exception as exc:
                raise KafkaUnavailableError(
                    f"{self.name}: commit of {len(offsets)} offsets failed: {describe(exc)}"
                ) from exc
            for tp, (offset, _) in offsets.items():
                self._committed[(tp.topic, tp.partition)] = offset

    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.commit_interval)
            consumer = self._consumer
            if consumer is None:
                return
            try:
                await self._commit(consumer, self._assigned)
            except KafkaUnavailableError as exc:
                log.warning("%s", exc)  # kept marked: the next round retries

    def _listener(self) -> Any:
        from . import _aio

        return _aio.RebalanceListener(self._revoked, self._assigned_now)

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        consumer = self._consumer
        if consumer is not None and revoked:
            try:
                await self._commit(consumer, revoked)
            except KafkaUnavailableError as exc:
                log.warning("%s (on rebalance)", exc)
        for tp in revoked:
            self._marks.pop(tp, None)
            self._committed.pop(tp, None)
        self._assigned -= revoked
        if self._on_revoked is not None and revoked:
            self._on_revoked(revoked)

    def _assigned_now(self, assigned: set[TopicPartition]) -> None:
        self._assigned = set(assigned)
        log.info("%s: group %s assigned %s", self.name, self.group_id,
                 ", ".join(f"{t}[{p}]" for t, p in sorted(assigned)) or "nothing")

    async def stop(self) -> None:
        """Stop reading, commit what was marked (best effort) and leave the group."""
        self._closed = True
        await self._cancel_tasks()
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.config.request_timeout):
                await self._commit(consumer, self._assigned)
        await self._stop_consumer(consumer)


class PartitionConsumer(_Base):
    """Reads one partition from ``offset`` (or OFFSET_OLDEST / OFFSET_NEWEST), outside
    any group: nothing is committed, the caller keeps track of offsets it needs."""

    def __init__(self, config: ClientConfig, topic: str, partition: int, offset: int,
                 handler: MessageHandler, *, name: str = "kafka-partition") -> None:
        super().__init__(config, handler, name)
        if partition < 0:
            raise SubscriptionError(f"{topic}: partition {partition} is negative")
        if offset < OFFSET_OLDEST:
            raise SubscriptionError(f"{topic}[{partition}]: offset {offset} is not valid "
                                    "(>= 0, OFFSET_NEWEST or OFFSET_OLDEST)")
        self.topic = topic
        self.partition = partition
        self.offset = offset

    async def start(self) -> None:
        if self._closed:
            raise ClientClosedError(f"{self.name}: the consumer is closed")
        if self._consumer is not None:
            return
        from . import _aio

        tp = _aio.TopicPartition(self.topic, self.partition)
        consumer = _aio.AIOKafkaConsumer(
            **_aio.common_kwargs(self.config),
            group_id=None,
            enable_auto_commit=False,
            # An offset already deleted by retention resumes at the oldest one kept.
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=max(1_048_576, self.config.max_message_bytes),
        )

        async def position(started: Any) -> None:
            partitions = await _aio.partitions_of(started, self.topic)
            if not partitions or self.partition not in partitions:
                raise SubscriptionError(
                    f"topic {self.topic} has no partition {self.partition}"
                    + (f" (it has {sorted(partitions)})" if partitions else " (no such topic)"))
            started.assign([tp])
            if self.offset == OFFSET_OLDEST:
                await started.seek_to_beginning(tp)
            elif self.offset == OFFSET_NEWEST:
                await started.seek_to_end(tp)
            else:
                end = (await started.end_offsets([tp]))[tp]
                if self.offset > end:
                    raise SubscriptionError(f"{self.topic}[{self.partition}]: offset "
                                            f"{self.offset} is past the end ({end})")
                started.seek(tp, self.offset)

        await self._open(consumer, position)
        self._spawn(_fetch_loop(consumer, self._handler, self.name, _aio.consumer_message),
                    "fetch")

    async def stop(self) -> None:
        self._closed = True
        await self._cancel_tasks()
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await self._stop_consumer(consumer)

"""The Multiplexer: one sync producer, one async producer and one consumer group shared
by named connections (cn-infra's ``mux``).

Delivery is at-least-once. A topic watcher's message is committed only once
every connection watching that topic has marked it (``mark_offset``), so a
crash, a restart or a rebalance re-delivers what was not marked; a handler
must therefore tolerate duplicates. Partition watchers read outside the group
from the offset they were given and commit nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..client import (
    AsyncProducer,
    ClientConfig,
    Consumer,
    ConsumerMessage,
    PartitionConsumer,
    SyncProducer,
)
from ..errors import ClientClosedError, KafkaUnavailableError, SubscriptionError
from .connection import BytesConnection, Callback, ProtoConnection, _Connection
from .message import BytesMessage

log = logging.getLogger("sidecar.kafka")

TopicPartition = tuple[str, int]
ConnectionT = TypeVar("ConnectionT", bound=_Connection[Any])


@dataclass(eq=False)
class _Watcher:
    connection: _Connection[Any]
    callback: Callback[Any]
    prev_limit: int
    #: (topic, key) -> the value last delivered to this watcher (bounded, LRU).
    prev: OrderedDict[tuple[str, bytes], bytes] = field(default_factory=OrderedDict)

    async def deliver(self, message: ConsumerMessage, committable: bool) -> None:
        prev_value: bytes | None = None
        if message.key is not None and self.prev_limit > 0:
            slot = (message.topic, message.key)
            prev_value = self.prev.pop(slot, None)
            if message.value is not None:
                self.prev[slot] = message.value
                if len(self.prev) > self.prev_limit:
                    self.prev.popitem(last=False)
        try:
            result = self.callback(self.connection._wrap(message, prev_value, committable))
            if inspect.isawaitable(result):
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("kafka connection %s: watcher of %s[%d]@%d failed",
                          self.connection.name, message.topic, message.partition, message.offset)


@dataclass(eq=False)
class _PartitionWatch:
    topic: str
    partition: int
    offset: int
    watchers: list[_Watcher] = field(default_factory=list)
    consumer: PartitionConsumer | None = None

    async def dispatch(self, message: ConsumerMessage) -> None:
        for watcher in list(self.watchers):
            await watcher.deliver(message, committable=False)


class Multiplexer:
    """Shares one sync producer, one async producer and one consumer group among
    named connections.

        mux = Multiplexer(ClientConfig(addrs=("127.0.0.1:9092",)), group_id="demo")
        conn = mux.new_bytes_connection("orders")
        await conn.consume_topic(on_order, "orders")
        await mux.start()
        await conn.new_sync_publisher("orders").put("id-1", b"...")
        ...
        await mux.close()

    ``start()`` raises KafkaUnavailableError when no broker answers and may be
    called again; until it succeeds publishers fail with that error.
    """

    def __init__(self, config: ClientConfig, group_id: str, *, name: str = "kafka",
                 prev_value_keys: int = 10_000) -> None:
        if not group_id:
            raise ValueError("a multiplexer needs a consumer group id")
        if prev_value_keys < 0:
            raise ValueError("prev_value_keys must not be negative")
        self.config = config
        self.group_id = group_id
        self.name = name
        self.prev_value_keys = prev_value_keys
        self._sync = SyncProducer(config, name=f"{name}-sync")
        self._async = AsyncProducer(config, name=f"{name}-async")
        self._group: Consumer | None = None
        self._connections: dict[str, _Connection[Any]] = {}
        self._topic_watchers: dict[str, list[_Watcher]] = {}
        self._partition_watches: dict[tuple[str, int, int], _PartitionWatch] = {}
        self._marks: dict[str, dict[TopicPartition, tuple[int, str]]] = {}
        self._lock = asyncio.Lock()
        self._started = False
        self._closed = False

    # -- connections ------------------------------------------------------------
    def new_bytes_connection(self, name: str) -> BytesConnection:
        return self._add_connection(BytesConnection(self, name))

    def new_proto_connection(self, name: str) -> ProtoConnection:
        return self._add_connection(ProtoConnection(self, name))

    def _add_connection(self, connection: ConnectionT) -> ConnectionT:
        if self._closed:
            raise ClientClosedError(f"{self.name}: the multiplexer is closed")
        if not connection.name:
            raise ValueError("a connection needs a name")
        if connection.name in self._connections:
            raise ValueError(f"{self.name}: a connection named {connection.name!r} exists")
        self._connections[connection.name] = connection
        return connection

    @property
    def connections(self) -> list[str]:
        return sorted(self._connections)

    # -- shared clients ----------------------------------------------------------
    @property
    def sync_producer(self) -> SyncProducer:
        """The one sync producer every connection's sync publishers write through."""
        return self._sync

    @property
    def async_producer(self) -> AsyncProducer:
        """The one async producer every connection's async publishers write through."""
        return self._async

    @property
    def consumer(self) -> Consumer | None:
        """The group consumer, once started with at least one topic watcher."""
        return self._group

    @property
    def started(self) -> bool:
        return self._started

    @property
    def topics(self) -> list[str]:
        """Topics with at least one watcher."""
        return sorted(self._topic_watchers)

    async def brokers(self) -> int:
        """Brokers in the cluster's metadata (KafkaUnavailableError if none answer)."""
        return await self._sync.brokers()

    # -- lifecycle ---------------------------------------------------------------
    async def start(self) -> None:
        """Connect the producers, join the group with the topics watched so far and
        start the partition watchers. KafkaUnavailableError leaves nothing running."""
        async with self._lock:
            if self._closed:
                raise ClientClosedError(f"{self.name}: the multiplexer is closed")
            if self._started:
                return
            try:
                await self._sync.start()
                await self._async.start()
                if self._topic_watchers:
                    await self._start_group()
            except BaseException:
                await self._reset_clients()
                raise
            self._started = True
            for key, watch in list(self._partition_watches.items()):
                try:
                    await self._start_partition(watch)
                except SubscriptionError as exc:
                    # One bad watcher must not keep every other one (and publishing) down.
                    log.error("%s: dropping a partition watcher: %s",  # noqa: TRY400
                              self.name, exc)
                    del self._partition_watches[key]
        log.info("%s: connected to %s (group %s, %d topic(s), %d partition watcher(s))",
                 self.name, self.config.bootstrap, self.group_id, len(self._topic_watchers),
                 len(self._partition_watches))

    async def close(self) -> None:
        """Stop consuming (committing what was marked), flush and disconnect. Idempotent."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            self._started = False
            for watch in self._partition_watches.values():
                consumer, watch.consumer = watch.consumer, None
                if consumer is not None:
                    await consumer.stop()
            group, self._group = self._group, None
            if group is not None:
                await group.stop()
            await self._async.stop()
            await self._sync.stop()

    async def _reset_clients(self) -> None:
        """After a failed start: drop the half-started clients, make fresh ones."""
        group, self._group = self._group, None
        if group is not None:
            await group.stop()
        for watch in self._partition_watches.values():
            consumer, watch.consumer = watch.consumer, None
            if consumer is not None:
                await consumer.stop()
        await self._async.stop(grace=0.5)
        await self._sync.stop(grace=0.5)
        self._sync = SyncProducer(self.config, name=f"{self.name}-sync")
        self._async = AsyncProducer(self.config, name=f"{self.name}-async")

    async def _start_group(self) -> None:
        group = Consumer(self.config, self.group_id, self._dispatch,
                         on_revoked=self._revoked, name=f"{self.name}-group")
        await group.start(self._topic_watchers)
        self._group = group

    async def _start_partition(self, watch: _PartitionWatch) -> None:
        consumer = PartitionConsumer(
            self.config, watch.topic, watch.partition, watch.offset, watch.dispatch,
            name=f"{self.name}-{watch.topic}-{watch.partition}")
        await consumer.start()
        watch.consumer = consumer

    # -- consuming: the Hub its connections call (users go through a connection) ----
    async def _dispatch(self, message: ConsumerMessage) -> None:
        for watcher in list(self._topic_watchers.get(message.topic, ())):
            await watcher.deliver(message, committable=True)

    async def watch_topics(self, connection: _Connection[Any], callback: Callback[Any],
                             topics: Iterable[str]) -> None:
        topic_list = list(dict.fromkeys(topics))
        if not topic_list or not all(isinstance(t, str) and t for t in topic_list):
            raise SubscriptionError(f"{connection.name}: consume_topic needs topic names, "
                                    f"got {topic_list!r}")
        async with self._lock:
            self._check_open()
            new = [t for t in topic_list if t not in self._topic_watchers]
            for topic in topic_list:
                self._topic_watchers.setdefault(topic, []).append(
                    _Watcher(connection, callback, self.prev_value_keys))
            if not self._started or not new:
                return
            try:
                if self._group is None:
                    await self._start_group()
                else:
                    self._group.subscribe(self._topic_watchers)
            except BaseException:
                for topic in topic_list:
                    self._remove_watchers(connection, topic)
                raise
            log.info("%s: connection %s now watches %s", self.name, connection.name,
                     ", ".join(topic_list))

    async def watch_partition(self, connection: _Connection[Any], callback: Callback[Any],
                                 topic: str, partition: int, offset: int) -> None:
        if not topic:
            raise SubscriptionError(f"{connection.name}: consume_partition needs a topic")
        async with self._lock:
            self._check_open()
            key = (topic, partition, offset)
            watch = self._partition_watches.get(key)
            fresh = watch is None
            if watch is None:
                watch = _PartitionWatch(topic, partition, offset)
            watch.watchers.append(_Watcher(connection, callback, self.prev_value_keys))
            if fresh and self._started:
                try:
                    await self._start_partition(watch)
                except BaseException:
                    watch.watchers.clear()
                    raise
            if fresh:
                self._partition_watches[key] = watch

    async def unwatch_topic(self, connection: _Connection[Any], topic: str) -> None:
        async with self._lock:
            if not self._remove_watchers(connection, topic):
                raise SubscriptionError(f"connection {connection.name} does not consume {topic}")
            for tp in [tp for tp in self._marks.get(connection.name, {}) if tp[0] == topic]:
                del self._marks[connection.name][tp]
                self._remark(tp)
            group = self._group
            if group is None or topic in self._topic_watchers:
                return
            if self._topic_watchers:
                group.subscribe(self._topic_watchers)
            else:
                self._group = None
                await group.stop()

    def _remove_watchers(self, connection: _Connection[Any], topic: str) -> bool:
        watchers = self._topic_watchers.get(topic, [])
        kept = [w for w in watchers if w.connection is not connection]
        if len(kept) == len(watchers):
            return False
        if kept:
            self._topic_watchers[topic] = kept
        else:
            self._topic_watchers.pop(topic, None)
        return True

    async def unwatch_partition(self, connection: _Connection[Any], topic: str,
                                        partition: int, offset: int) -> None:
        async with self._lock:
            key = (topic, partition, offset)
            watch = self._partition_watches.get(key)
            kept = [w for w in watch.watchers if w.connection is not connection] if watch else []
            if watch is None or len(kept) == len(watch.watchers):
                raise SubscriptionError(f"connection {connection.name} does not consume "
                                        f"{topic}[{partition}] from offset {offset}")
            watch.watchers = kept
            if not kept:
                del self._partition_watches[key]
                consumer, watch.consumer = watch.consumer, None
                if consumer is not None:
                    await consumer.stop()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(f"{self.name}: the multiplexer is closed")

    # -- offsets (mark_offset: the Hub too) -------------------------------------------
    def mark_offset(self, connection: _Connection[Any], message: BytesMessage,
                     metadata: str) -> None:
        if not message.committable:
            return
        tp = (message.topic, message.partition)
        marks = self._marks.setdefault(connection.name, {})
        current = marks.get(tp)
        if current is None or message.offset >= current[0]:
            marks[tp] = (message.offset, metadata)
        self._remark(tp)

    def _remark(self, tp: TopicPartition) -> None:
        """Tell the group the offset every watching connection has marked."""
        group = self._group
        if group is None:
            return
        names = {w.connection.name for w in self._topic_watchers.get(tp[0], ())}
        marks = [self._marks.get(name, {}).get(tp) for name in names]
        if not marks or any(mark is None for mark in marks):
            return
        offset, metadata = min(m for m in marks if m is not None)
        group.mark_offset(tp[0], tp[1], offset, metadata)

    def _revoked(self, partitions: set[TopicPartition]) -> None:
        # Another member owns them now: our marks say nothing about its progress.
        for marks in self._marks.values():
            for tp in partitions:
                marks.pop(tp, None)

    async def commit_offsets(self) -> None:
        """Commit every marked offset now; KafkaUnavailableError if the group cannot."""
        group = self._group
        if group is None:
            if not self._started:
                raise KafkaUnavailableError(f"{self.name}: not connected yet")
            return
        await group.commit()

    def describe(self) -> dict[str, Any]:
        """A summary for logs and debugging."""
        return {
            "started": self._started,
            "group_id": self.group_id,
            "connections": self.connections,
            "topics": self.topics,
            "partition_watchers": [f"{t}[{p}]@{o}" for t, p, o in self._partition_watches],
            "pending_async": self._async.pending,
        }


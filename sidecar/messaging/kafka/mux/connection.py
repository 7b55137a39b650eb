"""Named connections of a multiplexer: publishers and watchers for bytes or protobuf."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from ..client import OFFSET_NEWEST, ConsumerMessage, ErrorCallback, SuccessCallback
from .message import BytesMessage, ProtoMessage
from .publisher import (
    BytesAsyncPublisher,
    BytesSyncPublisher,
    ProtoAsyncPublisher,
    ProtoSyncPublisher,
    _Producers,
)

MessageT = TypeVar("MessageT", bound=BytesMessage)
#: A watcher's callback; a coroutine function is awaited before the next message.
Callback = Callable[[MessageT], Awaitable[None] | None]


class Hub(_Producers, Protocol):
    """What a connection needs from its multiplexer: the producers, the consumer group
    and the partition watchers it shares with the other connections, and the offsets."""

    async def watch_topics(self, connection: _Connection[Any], callback: Callback[Any],
                           topics: Iterable[str]) -> None: ...

    async def watch_partition(self, connection: _Connection[Any], callback: Callback[Any],
                              topic: str, partition: int, offset: int) -> None: ...

    async def unwatch_topic(self, connection: _Connection[Any], topic: str) -> None: ...

    async def unwatch_partition(self, connection: _Connection[Any], topic: str,
                                partition: int, offset: int) -> None: ...

    def mark_offset(self, connection: _Connection[Any], message: BytesMessage,
                    metadata: str) -> None: ...

    async def commit_offsets(self) -> None: ...


class _Connection(Generic[MessageT]):
    """What both connection kinds share: the consuming side and offset marking."""

    _message_type: type[MessageT]

    def __init__(self, mux: Hub, name: str) -> None:
        self._mux = mux
        self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- consuming -------------------------------------------------------------
    async def consume_topic(self, callback: Callback[MessageT], *topics: str) -> None:
        """Watch ``topics`` in the multiplexer's consumer group.

        Best added before ``Multiplexer.start()`` (as in cn-infra); added
        later, the group rebalances to take the new topics in. Every message
        is read at least once: commit happens only for offsets marked with
        ``mark_offset``.
        """
        await self._mux.watch_topics(self, callback, topics)

    async def consume_partition(self, callback: Callback[MessageT], topic: str, partition: int,
                                offset: int = OFFSET_NEWEST) -> None:
        """Watch one partition from ``offset`` (also OFFSET_OLDEST / OFFSET_NEWEST), outside
        the group: works before and after start; the caller keeps the offsets it needs."""
        await self._mux.watch_partition(self, callback, topic, partition, offset)

    async def stop_consuming(self, topic: str) -> None:
        """Stop this connection's topic watchers of ``topic``."""
        await self._mux.unwatch_topic(self, topic)

    async def stop_consuming_partition(self, topic: str, partition: int,
                                       offset: int = OFFSET_NEWEST) -> None:
        """Stop this connection's watchers of ``topic[partition]`` that started at ``offset``."""
        await self._mux.unwatch_partition(self, topic, partition, offset)

    def mark_offset(self, message: BytesMessage, metadata: str = "") -> None:
        """Mark ``message`` as handled by this connection.

        The group's offset moves past a message once every connection watching
        its topic marked it; it is committed within ``commit-interval``, on
        ``commit_offsets()``, on rebalance and on close. A no-op for messages
        from partition watchers (``committable`` False).
        """
        self._mux.mark_offset(self, message, metadata)

    async def commit_offsets(self) -> None:
        """Commit the marked offsets now (KafkaUnavailableError if that fails)."""
        await self._mux.commit_offsets()

    def _wrap(self, message: ConsumerMessage, prev_value: bytes | None,
              committable: bool) -> MessageT:
        return self._message_type(message.topic, message.partition, message.offset, message.key,
                                  message.value, prev_value, message.timestamp, message.headers,
                                  self.name, committable)


class BytesConnection(_Connection[BytesMessage]):
    """Publishes and receives values as bytes."""

    _message_type = BytesMessage

    def new_sync_publisher(self, topic: str) -> BytesSyncPublisher:
        return BytesSyncPublisher(self._mux, self.name, topic, None)

    def new_sync_publisher_to_partition(self, topic: str, partition: int) -> BytesSyncPublisher:
        return BytesSyncPublisher(self._mux, self.name, topic, partition)

    def new_async_publisher(self, topic: str, on_success: SuccessCallback | None = None,
                            on_error: ErrorCallback | None = None) -> BytesAsyncPublisher:
        return BytesAsyncPublisher(self._mux, self.name, topic, None,
                                   on_success=on_success, on_error=on_error)

    def new_async_publisher_to_partition(
            self, topic: str, partition: int, on_success: SuccessCallback | None = None,
            on_error: ErrorCallback | None = None) -> BytesAsyncPublisher:
        return BytesAsyncPublisher(self._mux, self.name, topic, partition,
                                   on_success=on_success, on_error=on_error)


class ProtoConnection(_Connection[ProtoMessage]):
    """Publishes protobuf messages and receives ProtoMessage (``get_value(MessageClass)``)."""

    _message_type = ProtoMessage

    def new_sync_publisher(self, topic: str) -> ProtoSyncPublisher:
        return ProtoSyncPublisher(self._mux, self.name, topic, None)

    def new_sync_publisher_to_partition(self, topic: str, partition: int) -> ProtoSyncPublisher:
        return ProtoSyncPublisher(self._mux, self.name, topic, partition)

    def new_async_publisher(self, topic: str, on_success: SuccessCallback | None = None,
                            on_error: ErrorCallback | None = None) -> ProtoAsyncPublisher:
        return ProtoAsyncPublisher(self._mux, self.name, topic, None,
                                   on_success=on_success, on_error=on_error)

    def new_async_publisher_to_partition(
            self, topic: str, partition: int, on_success: SuccessCallback | None = None,
            on_error: ErrorCallback | None = None) -> ProtoAsyncPublisher:
        return ProtoAsyncPublisher(self._mux, self.name, topic, partition,
                                   on_success=on_success, on_error=on_error)

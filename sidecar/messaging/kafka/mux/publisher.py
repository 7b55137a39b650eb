"""Publishers bound to a topic (and optionally a partition) of a multiplexer connection.

Sync publishers' ``put`` waits for the brokers and returns where the message
landed (or raises PublishError); async publishers' ``put`` returns at once and
reports to the callbacks given when the publisher was made.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ..client import AsyncProducer, ErrorCallback, ProducerMessage, SuccessCallback, SyncProducer

if TYPE_CHECKING:
    from google.protobuf.message import Message


class _Producers(Protocol):
    """What a publisher needs from its multiplexer: the producers of the moment."""

    @property
    def sync_producer(self) -> SyncProducer: ...

    @property
    def async_producer(self) -> AsyncProducer: ...


class _Publisher:
    def __init__(self, producers: _Producers, connection: str, topic: str,
                 partition: int | None) -> None:
        if not topic:
            raise ValueError("a publisher needs a topic")
        if partition is not None and partition < 0:
            raise ValueError(f"{topic}: partition {partition} is negative")
        self._producers = producers
        self.connection = connection
        self.topic = topic
        #: None: the multiplexer's partitioner chooses (by key with ``hash``).
        self.partition = partition

    def __repr__(self) -> str:
        where = self.topic if self.partition is None else f"{self.topic}[{self.partition}]"
        return f"<{type(self).__name__} {self.connection} -> {where}>"


class _SyncPublisher(_Publisher):
    @property
    def producer(self) -> SyncProducer:
        """The multiplexer's one sync producer, shared by every connection."""
        return self._producers.sync_producer


class BytesSyncPublisher(_SyncPublisher):
    async def put(self, key: str | bytes | None, data: bytes | str | None, *,
                  headers: Iterable[tuple[str, bytes]] = ()) -> ProducerMessage:
        """Write and wait for the brokers: partition and offset, or PublishError."""
        return await self._producers.sync_producer.send(
            self.topic, data, key=key, partition=self.partition, headers=headers)


class _AsyncPublisher(_Publisher):
    def __init__(self, producers: _Producers, connection: str, topic: str,
                 partition: int | None, *, on_success: SuccessCallback | None,
                 on_error: ErrorCallback | None) -> None:
        super().__init__(producers, connection, topic, partition)
        self.on_success = on_success
        self.on_error = on_error

    @property
    def producer(self) -> AsyncProducer:
        """The multiplexer's one async producer, shared by every connection."""
        return self._producers.async_producer

    def _send(self, key: str | bytes | None, data: bytes | None, metadata: Any,
              headers: Iterable[tuple[str, bytes]]) -> None:
        self._producers.async_producer.send(
            self.topic, data, key=key, partition=self.partition, headers=headers,
            metadata=metadata, on_success=self.on_success, on_error=self.on_error)

    async def flush(self, max_wait: float | None = None) -> bool:
        """Wait until every message sent so far (on any publisher) is confirmed or failed."""
        return await self._producers.async_producer.flush(max_wait)


class BytesAsyncPublisher(_AsyncPublisher):
    def put(self, key: str | bytes | None, data: bytes | str | None, *, metadata: Any = None,
            headers: Iterable[tuple[str, bytes]] = ()) -> None:
        """Queue the message and return; ``metadata`` comes back in the callback."""
        # _send inlined: this is the hot path of the async throughput figure.
        self._producers.async_producer.send(
            self.topic, data, key=key, partition=self.partition, headers=headers,
            metadata=metadata, on_success=self.on_success, on_error=self.on_error)


class ProtoSyncPublisher(_SyncPublisher):
    async def put(self, key: str | bytes | None, message: Message | None, *,
                  headers: Iterable[tuple[str, bytes]] = ()) -> ProducerMessage:
        """Serialise ``message`` (None: a tombstone), write it and wait for the brokers."""
        data = None if message is None else message.SerializeToString()
        return await self._producers.sync_producer.send(
            self.topic, data, key=key, partition=self.partition, headers=headers)


class ProtoAsyncPublisher(_AsyncPublisher):
    def put(self, key: str | bytes | None, message: Message | None, *, metadata: Any = None,
            headers: Iterable[tuple[str, bytes]] = ()) -> None:
        """Serialise ``message`` (None: a tombstone) and queue it; returns at once."""
        data = None if message is None else message.SerializeToString()
        self._send(key, data, metadata, headers)

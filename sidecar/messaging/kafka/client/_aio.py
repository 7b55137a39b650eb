"""Everything that touches aiokafka; imported only when a client starts.

Kept apart so that ``import sidecar.messaging.kafka`` (done by the builder to
read kafka.conf) stays cheap and works without aiokafka installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from ..errors import PublishError
from .config import ACKS_VALUES, ClientConfig
from .message import ConsumerMessage, Headers
from .partitioners import Partitioner, sarama_hash_partition, unkeyed_partition

__all__ = [
    "AIOKafkaConsumer",
    "AIOKafkaProducer",
    "KafkaError",
    "RebalanceListener",
    "TopicPartition",
    "common_kwargs",
    "consumer_message",
    "partitioner",
    "partitions",
    "partitions_of",
    "producer_kwargs",
    "record_size",
    "stop_consumer",
]


def common_kwargs(config: ClientConfig) -> dict[str, Any]:
    """Bootstrap, timeouts and security options shared by producers and consumers."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": list(config.addrs),
        "client_id": config.client_id,
        "request_timeout_ms": int(config.request_timeout * 1000),
        "metadata_max_age_ms": int(config.metadata_max_age * 1000),
    }
    tls = config.tls if config.tls is not None and config.tls.enabled else None
    if tls is not None:
        kwargs["ssl_context"] = tls.ssl_context()
    if config.sasl is not None:
        kwargs["security_protocol"] = "SASL_SSL" if tls else "SASL_PLAINTEXT"
        kwargs["sasl_mechanism"] = config.sasl.mechanism
        kwargs["sasl_plain_username"] = config.sasl.username
        kwargs["sasl_plain_password"] = config.sasl.resolve_password()
    elif tls is not None:
        kwargs["security_protocol"] = "SSL"
    return kwargs


def _random_partitioner(_key: bytes | None, all_partitions: Sequence[int],
                        available: Sequence[int]) -> int:
    return unkeyed_partition(all_partitions, available)


def _murmur2_partitioner(key: bytes | None, all_partitions: Sequence[int],
                         available: Sequence[int]) -> int:
    """``murmur2``: the Java client's ``toPositive(murmur2(key)) % n``."""
    if key is None:
        return unkeyed_partition(all_partitions, available)
    ordered = sorted(all_partitions)
    index: int = (murmur2(key) & 0x7FFFFFFF) % len(ordered)
    return ordered[index]


def _manual_partitioner(_key: bytes | None, _all: Sequence[int], _available: Sequence[int]) -> int:
    raise PublishError("the manual partitioner needs every message to name its partition")


_PARTITIONERS: dict[str, Partitioner] = {
    "hash": sarama_hash_partition,
    "murmur2": _murmur2_partitioner,
    "random": _random_partitioner,
    "manual": _manual_partitioner,
}


def partitioner(name: str) -> Partitioner:
    """``partitioner(key, all_partitions, available_partitions) -> partition``."""
    return _PARTITIONERS[name]


async def partitions(producer: AIOKafkaProducer, topic: str) -> tuple[list[int], list[int]]:
    """All partitions of ``topic`` and those with a leader now (waits for metadata)."""
    every = sorted(await producer.partitions_for(topic))
    available = producer.client.cluster.available_partitions_for_topic(topic)
    return every, sorted(available) if available else every


def record_size(key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]]) -> int:
    """A message's size as a producer counts it against ``max_request_size``."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers))


def producer_kwargs(config: ClientConfig, *, linger: float) -> dict[str, Any]:
    kwargs = common_kwargs(config)
    kwargs.update(
        acks=ACKS_VALUES[config.required_acks],
        enable_idempotence=config.idempotent,
        partitioner=_PARTITIONERS[config.partitioner],
        max_request_size=config.max_message_bytes,
        linger_ms=int(linger * 1000),
        # Batches up to 256 KiB: 1 KiB messages go out in far fewer requests.
        max_batch_size=max(262_144, min(config.max_message_bytes, 1_048_576)),
    )
    return kwargs


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int] | None:
    """The partitions of ``topic`` from fresh cluster metadata (None: no such topic)."""
    # The consumer's own cache only knows the topics it subscribed to or assigned.
    cluster = await consumer._client.fetch_all_metadata()
    partitions = cluster.partitions_for_topic(topic)
    return set(partitions) if partitions is not None else None


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """``consumer.stop()``, finished even when aiokafka cancels its own fetches mid-retry.

    Fetcher.close cancels the fetch requests in flight and awaits them; one that was
    sleeping its retry backoff (the broker gone) re-raises that CancelledError out of
    stop(), before the other requests are cancelled and the connections closed
    (aio-libs/aiokafka#647). That cancellation is aiokafka's own: the close is finished
    here and this returns. A cancellation of the caller (a close deadline) propagates.
    """
    current = asyncio.current_task()
    before = current.cancelling() if current is not None else 0
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        if current is not None and current.cancelling() > before:
            raise
        fetcher = consumer._fetcher
        pending = [task for task in fetcher._pending_tasks if not task.done()] if fetcher else []
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        await consumer._client.close()


def consumer_message(record: ConsumerRecord[bytes, bytes]) -> ConsumerMessage:
    headers: Headers = tuple(record.headers) if record.headers else ()
    return ConsumerMessage(record.topic, record.partition, record.offset, record.key,
                           record.value, record.timestamp, headers)


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards aiokafka's rebalance notifications (awaited before the group moves on)."""

    def __init__(self, revoked: Callable[[set[tuple[str, int]]], Awaitable[None]],
                 assigned: Callable[[set[tuple[str, int]]], None]) -> None:
        self._revoked = revoked
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._revoked({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._assigned({(tp.topic, tp.partition) for tp in assigned})

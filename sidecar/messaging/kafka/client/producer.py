"""Producers: a sync one (``send`` returns where the message landed, or raises) and an
async one (``send`` returns at once; callbacks report each message's fate).

aiokafka is imported by ``start()``, not by this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from ..errors import (
    ClientClosedError,
    KafkaMessagingError,
    KafkaUnavailableError,
    PublishError,
    PublishTimeoutError,
    describe,
)
from .config import ClientConfig
from .message import (
    ProducerMessage,
    as_bytes,
)

log = logging.getLogger("sidecar.kafka")

#: Broker answers that say it no longer accepts this idempotent producer's sequence
#: numbers for a partition. aiokafka keeps the producer id and fails every later
#: message of that partition the same way; a new producer (a new id) starts afresh.
#: Seen after a whole cluster restarted: a batch that expired while its partition had
#: no leader left a gap in the sequence.
_BROKEN_SEQUENCE = frozenset({"OutOfOrderSequenceNumber", "UnknownProducerId",
                              "InvalidProducerEpoch"})


class _Producer:
    """Start, stop and metadata shared by both producers (one aiokafka producer each)."""

    def __init__(self, config: ClientConfig, *, linger: float, name: str) -> None:
        self.config = config
        self.name = name
        self._linger = linger
        self._producer: Any = None
        self._closed = False
        self._renewing = asyncio.Lock()
        #: Times the aiokafka producer was replaced (a broken idempotent sequence).
        self.renewals = 0

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        """Connect to the brokers; raises KafkaUnavailableError (and may be retried)."""
        if self._closed:
            raise ClientClosedError(f"{self.name}: the producer is closed")
        if self._producer is not None:
            return
        self._producer = await self._connect()

    async def _connect(self) -> Any:
        from . import _aio

        producer = _aio.AIOKafkaProducer(**_aio.producer_kwargs(self.config,
                                                                linger=self._linger))
        try:
            await producer.start()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            if isinstance(exc, Exception):
                raise KafkaUnavailableError(
                    f"no broker reachable at {self.config.bootstrap}: {describe(exc)}") from exc
            raise
        return producer

    async def _renew_if_broken(self, producer: Any, exc: BaseException) -> None:
        """After ``exc`` from ``producer``: replace it if its idempotent sequence is broken
        (the message that failed was not written; the caller may send it again)."""
        if type(exc).__name__ not in _BROKEN_SEQUENCE or self._closed:
            return
        async with self._renewing:
            if self._producer is not producer:
                return  # another send has renewed it already
            log.warning("%s: the brokers refuse this producer's sequence numbers (%s); "
                        "starting a new producer", self.name, describe(exc))
            try:
                self._producer = await self._connect()
            except KafkaUnavailableError as error:
                log.warning("%s: %s; keeping the old producer for now", self.name, error)
                return
            self.renewals += 1
        # Its other messages get a moment to be confirmed; what fails is reported.
        await _stop_bounded(producer, 1.0, self.name)

    async def stop(self, grace: float = 5.0) -> None:
        """Wait up to ``grace`` s for unconfirmed messages, then fail them and disconnect."""
        self._closed = True
        producer, self._producer = self._producer, None
        if producer is not None:
            await _stop_bounded(producer, grace, self.name)

    async def brokers(self) -> int:
        """Ask the cluster for its metadata; the number of brokers, or KafkaUnavailableError."""
        producer = self._require()
        try:
            metadata = await producer.client.fetch_all_metadata()
        except Exception as exc:
            raise KafkaUnavailableError(
                f"no broker reachable at {self.config.bootstrap}: {describe(exc)}") from exc
        count = len(metadata.brokers())
        if count == 0:
            raise KafkaUnavailableError(f"the cluster at {self.config.bootstrap} has no broker")
        return count

    async def partitions_for(self, topic: str) -> set[int]:
        producer = self._require()
        try:
            return set(await producer.partitions_for(topic))
        except Exception as exc:
            raise PublishError(f"{topic}: no metadata: {describe(exc)}", topic=topic) from exc

    def _require(self) -> Any:
        if self._producer is None:
            if self._closed:
                raise ClientClosedError(f"{self.name}: the producer is closed")
            raise KafkaUnavailableError(
                f"{self.name}: not connected to {self.config.bootstrap} yet")
        return self._producer

    async def _check_partition(self, topic: str, partition: int) -> None:
        partitions = await self.partitions_for(topic)
        if partition not in partitions:
            raise PublishError(f"topic {topic} has no partition {partition} "
                               f"(it has {sorted(partitions)})", topic=topic)

    async def __aenter__(self) -> _Producer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class SyncProducer(_Producer):
    """Each ``send`` waits for the brokers' confirmation (``required_acks``)."""

    def __init__(self, config: ClientConfig, *, name: str = "kafka-sync") -> None:
        # Never linger: the caller is waiting for this one message.
        super().__init__(config, linger=0.0, name=name)

    async def send(self, topic: str, value: bytes | str | None, *, key: bytes | str | None = None,
                   partition: int | None = None, headers: Iterable[tuple[str, bytes]] = (),
                   timestamp: int | None = None) -> ProducerMessage:
        """Write one message; its partition and offset, or PublishError.

        ``PublishTimeoutError`` means no confirmation came within
        ``request_timeout``: the message may still have been written, so a
        retry can duplicate it (at-least-once).
        """
        try:
            producer = self._require()
        except KafkaMessagingError as exc:
            raise PublishError(f"{topic}: {exc}", topic=topic) from exc
        key_bytes, value_bytes = as_bytes(key, "key"), as_bytes(value, "value")
        header_list = list(headers)
        if partition is not None:
            await self._check_partition(topic, partition)
        try:
            future = await producer.send(topic, value_bytes, key=key_bytes, partition=partition,
                                         headers=header_list or None, timestamp_ms=timestamp)
            # aiokafka fails the future once request-timeout passes without a confirmation.
            metadata = await future
        except Exception as exc:
            await self._renew_if_broken(producer, exc)
            raise _publish_error(topic, exc) from exc
        if metadata is None:  # required-acks "none": the broker says nothing back
            return ProducerMessage(topic, key_bytes, value_bytes,
                                   -1 if partition is None else partition, -1, -1, None,
                                   tuple(header_list))
        return ProducerMessage(topic, key_bytes, value_bytes, metadata.partition, metadata.offset,
                               metadata.timestamp, None, tuple(header_list))


def _publish_error(topic: str, exc: BaseException) -> PublishError:
    name = type(exc).__name__
    if isinstance(exc, TimeoutError) or name in ("KafkaTimeoutError", "RequestTimedOutError"):
        return PublishTimeoutError(
            f"{topic}: no confirmation from the brokers in time ({describe(exc)}); "
            "the message may or may not have been written", topic=topic)
    if isinstance(exc, PublishError):
        return exc
    return PublishError(f"{topic}: {describe(exc)}", topic=topic)


async def _stop_bounded(producer: Any, grace: float, name: str) -> None:
    """Stop an aiokafka producer within ``grace`` s even with the brokers gone.

    aiokafka's own stop() waits up to ``request_timeout`` for unconfirmed
    batches; past our deadline they are failed instead, so that shutdown
    stays within the agent's stop timeout and every callback still fires.
    """
    try:
        async with asyncio.timeout(grace):
            await producer.flush()
    except TimeoutError:
        log.warning("%s: messages still unconfirmed %gs after close; failing them", name, grace)
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            with contextlib.suppress(Exception):
                await sender.close()
        accumulator = getattr(producer, "_message_accumulator", None)
        if accumulator is not None:
            accumulator.fail_all(ClientClosedError(f"{name} closed before the brokers confirmed"))
    with contextlib.suppress(Exception):
        await producer.stop()

"""An idempotent producer whose sequence numbers the brokers refuse is replaced.

aiokafka keeps its producer id after a partition's sequence broke (a batch that
expired while the partition had no leader, after a whole cluster restarted: see
tests/faults/test_kafka_cluster.py) and then fails every later message of that
partition with OutOfOrderSequenceNumber. Here aiokafka's producer is a stand-in
that answers so, to check the reaction alone.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber, RequestTimedOutError
from aiokafka.structs import RecordMetadata, TopicPartition

from sidecar.messaging.kafka import AsyncProducer, ClientConfig, PublishError, SyncProducer
from sidecar.messaging.kafka.client import ProducerError, ProducerMessage, _aio
from tests._wait import until


class BrokenFirst:
    """An AIOKafkaProducer whose first instance fails every message with ``error``."""

    made: ClassVar[list[BrokenFirst]] = []
    error: ClassVar[type[Exception]] = OutOfOrderSequenceNumber

    def __init__(self, **_kwargs: Any) -> None:
        self.stopped = False
        self.sent = 0
        BrokenFirst.made.append(self)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self.stopped = True

    async def flush(self) -> None:
        pass

    def _answer(self, topic: str, partition: int) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self is BrokenFirst.made[0]:
            future.set_exception(BrokenFirst.error())
        else:
            self.sent += 1
            future.set_result(RecordMetadata(topic, partition, TopicPartition(topic, partition),
                                             self.sent - 1, 1, -1, 0))
        return future

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> asyncio.Future[Any]:
        return self._answer(topic, kwargs.get("partition") or 0)

    # -- what the async producer uses ---------------------------------------------------
    client = SimpleNamespace(cluster=SimpleNamespace(
        available_partitions_for_topic=lambda _topic: {0}))

    async def partitions_for(self, _topic: str) -> set[int]:
        return {0}

    def create_batch(self) -> Any:
        return SimpleNamespace(append=lambda **_kw: SimpleNamespace(timestamp=1),
                               close=lambda: None)

    async def send_batch(self, _batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        return self._answer(topic, partition)


@pytest.fixture
def broken_first(monkeypatch: pytest.MonkeyPatch) -> type[BrokenFirst]:
    BrokenFirst.made = []
    BrokenFirst.error = OutOfOrderSequenceNumber
    monkeypatch.setattr(_aio, "AIOKafkaProducer", BrokenFirst)
    return BrokenFirst


CONFIG = ClientConfig(idempotent=True)


async def test_the_sync_producer_starts_a_new_producer_and_the_next_send_goes_through(
    broken_first: type[BrokenFirst],
) -> None:
    producer = SyncProducer(CONFIG)
    await producer.start()
    try:
        with pytest.raises(PublishError, match="OutOfOrderSequenceNumber"):
            await producer.send("status", b"1", key="a", partition=0)
        assert producer.renewals == 1 and broken_first.made[0].stopped
        written = await producer.send("status", b"1", key="a", partition=0)
        assert written.offset == 0 and broken_first.made[1].sent == 1
    finally:
        await producer.stop()


async def test_other_errors_keep_the_producer(broken_first: type[BrokenFirst]) -> None:
    broken_first.error = RequestTimedOutError
    producer = SyncProducer(CONFIG)
    await producer.start()
    try:
        for _ in range(2):
            with pytest.raises(PublishError):
                await producer.send("status", b"1", key="a", partition=0)
        assert producer.renewals == 0 and len(broken_first.made) == 1
    finally:
        await producer.stop()


async def test_the_async_producer_starts_a_new_producer_before_its_next_batch(
    broken_first: type[BrokenFirst],
) -> None:
    producer = AsyncProducer(CONFIG)
    await producer.start()
    failed: list[ProducerError] = []
    written: list[ProducerMessage] = []
    try:
        producer.send("status", b"1", key="a", on_success=written.append,
                      on_error=failed.append)
        await until(lambda: failed, 5, "the first message failing")
        assert "OutOfOrderSequenceNumber" in str(failed[0].error)
        await until(lambda: producer.renewals == 1, 5, "a new producer")
        producer.send("status", b"1", key="a", on_success=written.append,
                      on_error=failed.append)
        await until(lambda: written, 5, "the message sent again going through")
        assert len(failed) == 1 and broken_first.made[1].sent == 1
    finally:
        await producer.stop()

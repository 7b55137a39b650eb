"""The client layer against real brokers: partitioners, acks, groups, SASL and TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sidecar.messaging.kafka import (
    OFFSET_OLDEST,
    AsyncProducer,
    ClientConfig,
    Consumer,
    KafkaUnavailableError,
    PartitionConsumer,
    PublishError,
    SASLConfig,
    SyncProducer,
    TLSConfig,
)
from sidecar.messaging.kafka.client import ConsumerMessage, ProducerError
from tests._wait import until
from tests.kafka.conftest import client_config, unique
from tests.kafka.placement_table import COUNTS, PLACEMENT
from tests.servers import tls
from tests.servers._util import free_port
from tests.servers.kafka import KafkaBroker


async def create_topic(broker: KafkaBroker, partitions: int) -> str:
    topic = unique("parts")
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    return topic


#: Makes a started SyncProducer from client_config overrides; the fixture stops them all.
ProducerFactory = Callable[..., Awaitable[SyncProducer]]


@pytest.fixture
async def producer_factory(kafka_broker: KafkaBroker) -> AsyncIterator[ProducerFactory]:
    made: list[SyncProducer] = []

    async def make(**overrides: object) -> SyncProducer:
        producer = SyncProducer(client_config(kafka_broker, **overrides))
        made.append(producer)
        await producer.start()
        return producer

    yield make
    for producer in made:
        await producer.stop()


#: Keys from the fixed tables, with their partitions on a 12-partition topic.
_KEYS = [*[key for key in PLACEMENT if key.startswith(b"agent-")][:16], b"", b"\xff", b"vpp1"]
_TWELVE = COUNTS.index(12)


@pytest.mark.parametrize(("partitioner", "column"), [("hash", 0), ("murmur2", 1)])
async def test_keyed_messages_land_where_sarama_or_the_java_client_puts_them(
        kafka_broker: KafkaBroker, producer_factory: ProducerFactory, partitioner: str,
        column: int) -> None:
    topic = await create_topic(kafka_broker, 12)
    want = {key: PLACEMENT[key][column][_TWELVE] for key in _KEYS}
    producer = await producer_factory(partitioner=partitioner)
    synced = {key: (await producer.send(topic, b"sync", key=key)).partition for key in _KEYS}
    assert synced == want
    # The async producer places messages itself (it packs batches per partition).
    placed: dict[bytes, int] = {}
    failed: list[ProducerError] = []
    async_producer = AsyncProducer(client_config(kafka_broker, partitioner=partitioner))
    await async_producer.start()
    try:
        for key in _KEYS:
            async_producer.send(topic, b"async", key=key, on_error=failed.append,
                                on_success=lambda m: placed.__setitem__(m.key or b"", m.partition))
        assert await async_producer.flush(20.0)
    finally:
        await async_producer.stop()
    assert not failed
    assert placed == want


async def test_manual_partitioner_needs_a_partition_and_checks_it(
        kafka_broker: KafkaBroker, producer_factory: ProducerFactory) -> None:
    topic = await create_topic(kafka_broker, 4)
    producer = await producer_factory(partitioner="manual")
    written = await producer.send(topic, b"to-3", key="k", partition=3)
    assert written.partition == 3
    with pytest.raises(PublishError, match="name its partition"):
        await producer.send(topic, b"nowhere", key="k")
    with pytest.raises(PublishError, match=r"has no partition 9 \(it has \[0, 1, 2, 3\]\)"):
        await producer.send(topic, b"nowhere", partition=9)


@pytest.mark.parametrize("acks", ["none", "leader", "all"])
async def test_every_required_acks_level_delivers(
        kafka_broker: KafkaBroker, producer_factory: ProducerFactory, acks: str) -> None:
    topic = unique("acks")
    producer = await producer_factory(required_acks=acks)
    written = await producer.send(topic, b"hello")
    # With acks "none" the broker never answers, so the offset is unknown.
    assert (written.offset == -1) if acks == "none" else (written.offset >= 0)
    got: list[ConsumerMessage] = []
    reader = PartitionConsumer(client_config(kafka_broker), topic, 0, OFFSET_OLDEST, got.append)
    await reader.start()
    try:
        await until(lambda: got, 20, "the message read back")
    finally:
        await reader.stop()
    assert got[0].value == b"hello"


async def test_two_members_of_a_group_share_the_partitions(
        kafka_broker: KafkaBroker, producer_factory: ProducerFactory) -> None:
    topic, group = await create_topic(kafka_broker, 4), unique("group")
    received: list[tuple[str, ConsumerMessage]] = []

    def collector(name: str) -> Callable[[ConsumerMessage], None]:
        return lambda message: received.append((name, message))

    members = [Consumer(client_config(kafka_broker), group, collector(name), name=name)
               for name in ("a", "b")]
    try:
        await members[0].start([topic])
        await members[1].start([topic])
        await until(lambda: len(members[0].assignment) + len(members[1].assignment) == 4
                    and all(m.assignment for m in members), 30, "partitions split")
        assert not members[0].assignment & members[1].assignment
        producer = await producer_factory()
        for partition in range(4):
            await producer.send(topic, f"p{partition}", partition=partition)
        await until(lambda: len(received) == 4, 20, "four messages")
        owners = {m.partition: name for name, m in received}
        for name, member in zip(("a", "b"), members, strict=True):
            assert {p for p, owner in owners.items() if owner == name} == {
                p for _, p in member.assignment}
    finally:
        for member in members:
            await member.stop()


async def test_a_client_without_brokers_fails_clearly() -> None:
    producer = SyncProducer(ClientConfig(addrs=(f"127.0.0.1:{free_port()}",),
                                         request_timeout=2.0))
    with pytest.raises(KafkaUnavailableError, match=r"no broker reachable at 127\.0\.0\.1:"):
        await producer.start()
    with pytest.raises(PublishError, match="not connected"):
        await producer.send("t", b"x")
    await producer.stop()


# -- SASL and TLS: one broker with a SASL_PLAINTEXT and an SSL listener ------------------


class SecureBroker:
    def __init__(self, broker: KafkaBroker, sasl_port: int, ssl_port: int,
                 pki: tls.TestPKI) -> None:
        self.broker = broker
        self.sasl_addr = f"127.0.0.1:{sasl_port}"
        self.ssl_addr = f"127.0.0.1:{ssl_port}"
        self.pki = pki


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    pki = tls.make_pki(tmp_path_factory.mktemp("kafka-pki"))
    keystore = pki.server_key.parent / "server-keystore.pem"
    # Kafka's PEM key store: the certificate chain and the (PKCS#8) key in one file.
    keystore.write_text(pki.server_cert.read_text() + pki.server_key.read_text())
    broker = KafkaBroker()
    sasl_port, ssl_port = free_port(), free_port()
    local = "127.0.0.1"
    broker.properties.update({
        "listeners": (f"PLAINTEXT://{local}:{broker.port},CONTROLLER://{local}:"
                      f"{broker.controller_port},SASL_PLAINTEXT://{local}:{sasl_port},"
                      f"SSL://{local}:{ssl_port}"),
        "advertised.listeners": (f"PLAINTEXT://{local}:{broker.port},SASL_PLAINTEXT://{local}:"
                                 f"{sasl_port},SSL://{local}:{ssl_port}"),
        "listener.security.protocol.map": ("PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
                                           "SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL"),
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            'user_agent="agent-secret";'),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
    })
    try:
        broker.start()
        yield SecureBroker(broker, sasl_port, ssl_port, pki)
    finally:
        broker.close()


async def round_trip(config: ClientConfig) -> bytes:
    topic = unique("secure")
    producer = SyncProducer(config)
    await producer.start()
    try:
        await producer.send(topic, b"secret")
    finally:
        await producer.stop()
    got: list[ConsumerMessage] = []
    reader = PartitionConsumer(config, topic, 0, OFFSET_OLDEST, got.append)
    await reader.start()
    try:
        await until(lambda: got, 20, "the message read back")
    finally:
        await reader.stop()
    return got[0].value or b""


async def test_sasl_plain_authenticates_and_a_wrong_password_is_refused(
        secure_broker: SecureBroker, tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("agent-secret\n")  # as a mounted Secret, with its newline
    good = ClientConfig(addrs=(secure_broker.sasl_addr,), request_timeout=10.0,
                        sasl=SASLConfig(username="agent", password_file=str(password_file)))
    assert await round_trip(good) == b"secret"

    bad = ClientConfig(addrs=(secure_broker.sasl_addr,), request_timeout=5.0,
                       sasl=SASLConfig(username="agent", password="wrong"))
    producer = SyncProducer(bad)
    with pytest.raises(KafkaUnavailableError, match="no broker reachable"):
        await producer.start()
    await producer.stop()


async def test_tls_verifies_the_brokers_certificate(secure_broker: SecureBroker) -> None:
    trusted = ClientConfig(addrs=(secure_broker.ssl_addr,), request_timeout=10.0,
                           tls=TLSConfig(ca_file=str(secure_broker.pki.ca)))
    assert await round_trip(trusted) == b"secret"

    # The system CAs do not know the test CA: the handshake must fail.
    untrusted = ClientConfig(addrs=(secure_broker.ssl_addr,), request_timeout=5.0,
                             tls=TLSConfig())
    producer = SyncProducer(untrusted)
    with pytest.raises(KafkaUnavailableError):
        await asyncio.wait_for(producer.start(), 30)
    await producer.stop()


async def test_stopping_a_consumer_keeps_the_closers_deadline(
        kafka_broker: KafkaBroker, producer_factory: ProducerFactory) -> None:
    # A handler slow to unwind: stop() bounded by a deadline must end at the deadline
    # (it used to swallow its own cancellation, and exceptions with it).
    topic = unique("slow-handler")
    entered = asyncio.Event()

    async def slow_to_unwind(message: ConsumerMessage) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.Event().wait()  # until cancelled once more
            raise

    producer = await producer_factory()
    await producer.send(topic, b"one")
    reader = PartitionConsumer(client_config(kafka_broker), topic, 0, OFFSET_OLDEST,
                               slow_to_unwind)
    await reader.start()
    try:
        await asyncio.wait_for(entered.wait(), 20)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.2):
                await reader.stop()
    finally:
        await reader.stop()


async def test_a_deadline_stops_a_consumer_waiting_on_a_frozen_broker(
        own_kafka: KafkaBroker) -> None:
    # stop() absorbs the cancellation of aiokafka's own fetches; the closer's must still
    # end it: here it lands while aiokafka waits for the broker to answer LeaveGroup.
    topic = unique("frozen")
    consumer = Consumer(client_config(own_kafka, request_timeout=60.0), unique("group"),
                        lambda _message: None)
    await consumer.start([topic])
    library = consumer._consumer
    await asyncio.to_thread(own_kafka.freeze)
    try:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.0):
                await consumer.stop()
    finally:
        await asyncio.to_thread(own_kafka.thaw)
    # The stop given up on left aiokafka's fetcher and connections open: close them.
    await library._fetcher.close()
    await library._client.close()


async def test_stopping_an_async_producer_passes_on_the_closers_cancellation(
        kafka_broker: KafkaBroker) -> None:
    producer = AsyncProducer(client_config(kafka_broker))
    await producer.start()
    try:
        closing = asyncio.create_task(producer.stop())
        # One turn: stop() has cancelled the send loop and waits for it to unwind; the
        # agent's close deadline cancels it right then.
        await asyncio.sleep(0)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
    finally:
        await producer.stop()


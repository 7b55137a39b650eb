"""The multiplexer against a real broker: publishing, watching, sharing, offsets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from google.protobuf import wrappers_pb2

from sidecar.messaging.kafka import (
    OFFSET_OLDEST,
    BytesMessage,
    Multiplexer,
    ProducerError,
    ProducerMessage,
    ProtoMessage,
    PublishError,
    QueueFullError,
    SubscriptionError,
)
from tests._wait import until
from tests.kafka.conftest import MAX_MESSAGE_BYTES, client_config, unique
from tests.servers.kafka import KafkaBroker

MuxFactory = Callable[..., Multiplexer]


def collector() -> tuple[asyncio.Queue[BytesMessage], Callable[[BytesMessage], None]]:
    queue: asyncio.Queue[BytesMessage] = asyncio.Queue()
    return queue, queue.put_nowait


async def next_message(queue: asyncio.Queue[BytesMessage], timeout: float = 20.0) -> BytesMessage:
    return await asyncio.wait_for(queue.get(), timeout)


async def test_sync_publish_is_received_by_a_watcher_on_the_same_multiplexer(
        mux_factory: MuxFactory) -> None:
    topic = unique("orders")
    mux = mux_factory()
    conn = mux.new_bytes_connection("orders")
    received, on_message = collector()
    await conn.consume_topic(on_message, topic)
    await mux.start()

    publisher = conn.new_sync_publisher(topic)
    first = await publisher.put("id-1", b"created")
    assert (first.topic, first.partition, first.key, first.value) == (topic, 0, b"id-1",
                                                                      b"created")
    assert first.offset >= 0

    message = await next_message(received)
    assert (message.topic, message.partition, message.offset) == (topic, 0, first.offset)
    assert (message.key, message.get_key(), message.value) == (b"id-1", "id-1", b"created")
    assert message.prev_value is None  # the first value of this key
    assert message.connection == "orders" and message.committable

    second = await publisher.put("id-1", "paid")
    assert second.offset == first.offset + 1
    message = await next_message(received)
    assert (message.value, message.prev_value) == (b"paid", b"created")


async def test_async_publish_reports_success_and_error_to_callbacks_with_metadata(
        mux_factory: MuxFactory) -> None:
    topic = unique("events")
    mux = mux_factory()
    await mux.start()
    successes: asyncio.Queue[ProducerMessage] = asyncio.Queue()
    errors: asyncio.Queue[ProducerError] = asyncio.Queue()
    publisher = mux.new_bytes_connection("events").new_async_publisher(
        topic, on_success=successes.put_nowait, on_error=errors.put_nowait)

    # Returns at once, not a coroutine: what mypy knows statically, checked at run time.
    assert publisher.put(  # type: ignore[func-returns-value]
        "k", b"small", metadata={"request": 1}) is None
    ok = await asyncio.wait_for(successes.get(), 20)
    assert ok.metadata == {"request": 1}
    assert (ok.topic, ok.key, ok.value, ok.partition) == (topic, b"k", b"small", 0)
    assert ok.offset >= 0

    # Over the broker's message.max.bytes (the client's own limit is 1 MiB): the broker refuses.
    publisher.put("k", b"x" * (MAX_MESSAGE_BYTES + 10_000), metadata="too-big")
    failed = await asyncio.wait_for(errors.get(), 20)
    assert failed.metadata == "too-big"
    assert isinstance(failed.error, PublishError)
    assert "MessageSizeTooLarge" in str(failed.error) or "too large" in str(failed.error).lower()
    assert failed.message.topic == topic and failed.message.offset == -1
    assert successes.empty()


async def test_two_connections_share_one_producer_and_both_get_their_messages(
        mux_factory: MuxFactory) -> None:
    topic = unique("shared")
    mux = mux_factory()
    raw = mux.new_bytes_connection("raw")
    proto = mux.new_proto_connection("proto")
    raw_received, on_raw = collector()
    proto_received: asyncio.Queue[ProtoMessage] = asyncio.Queue()
    await raw.consume_topic(on_raw, topic)
    await proto.consume_topic(proto_received.put_nowait, topic)
    sync_before, async_before = mux.sync_producer, mux.async_producer
    await mux.start()

    raw_sync, proto_sync = raw.new_sync_publisher(topic), proto.new_sync_publisher(topic)
    raw_async, proto_async = raw.new_async_publisher(topic), proto.new_async_publisher(topic)
    # One sync and one async producer for every connection, the same before and after start.
    assert mux.sync_producer is sync_before and mux.async_producer is async_before
    assert raw_sync.producer is proto_sync.producer is mux.sync_producer
    assert raw_async.producer is proto_async.producer is mux.async_producer

    written = await proto_sync.put("name", wrappers_pb2.StringValue(value="first"))
    await raw_sync.put("name", wrappers_pb2.StringValue(value="second").SerializeToString())
    proto_async.put("name", wrappers_pb2.StringValue(value="third"))
    assert await proto_async.flush(20)

    assert mux.sync_producer is sync_before and mux.async_producer is async_before
    values = []
    for _ in range(3):
        message = await asyncio.wait_for(proto_received.get(), 20)
        assert isinstance(message, ProtoMessage) and message.connection == "proto"
        values.append(message.get_value(wrappers_pb2.StringValue).value)
        previous = message.get_prev_value(wrappers_pb2.StringValue)
        if message.offset == written.offset:
            assert previous is None
        else:
            assert previous is not None
    assert values == ["first", "second", "third"]
    raw_values = [(await next_message(raw_received)).value for _ in range(3)]
    assert raw_values[0] == wrappers_pb2.StringValue(value="first").SerializeToString()


async def test_partition_watcher_added_after_start_reads_from_its_offset(
        mux_factory: MuxFactory) -> None:
    topic = unique("log")
    mux = mux_factory()
    conn = mux.new_bytes_connection("replay")
    await mux.start()
    publisher = conn.new_sync_publisher_to_partition(topic, 0)
    offsets = [(await publisher.put(None, f"m{i}")).offset for i in range(5)]

    received, on_message = collector()
    await conn.consume_partition(on_message, topic, 0, offsets[2])
    got = [await next_message(received) for _ in range(3)]
    assert [m.offset for m in got] == offsets[2:]
    assert [m.value for m in got] == [b"m2", b"m3", b"m4"]
    assert not any(m.committable for m in got)  # outside the group

    # Still live: a new message reaches it too.
    later = await publisher.put(None, "m5")
    assert (await next_message(received)).offset == later.offset

    from_start, on_start = collector()
    await conn.consume_partition(on_start, topic, 0, OFFSET_OLDEST)
    assert (await next_message(from_start)).offset == offsets[0]

    with pytest.raises(SubscriptionError, match="no partition 3"):
        await conn.consume_partition(on_message, topic, 3, 0)
    with pytest.raises(SubscriptionError, match="past the end"):
        await conn.consume_partition(on_message, topic, 0, later.offset + 100)

    await conn.stop_consuming_partition(topic, 0, offsets[2])
    with pytest.raises(SubscriptionError):
        await conn.stop_consuming_partition(topic, 0, offsets[2])


async def test_marked_offsets_are_committed_and_unmarked_messages_come_again(
        mux_factory: MuxFactory) -> None:
    topic, group = unique("jobs"), unique("workers")
    first = mux_factory(group)
    conn = first.new_bytes_connection("worker")
    handled: list[BytesMessage] = []

    def handle(message: BytesMessage) -> None:
        handled.append(message)
        if message.value in (b"j0", b"j1"):
            conn.mark_offset(message)  # j2 and j3 are received, never marked

    await conn.consume_topic(handle, topic)
    await first.start()
    publisher = conn.new_sync_publisher(topic)
    for i in range(4):
        await publisher.put(None, f"j{i}")
    await until(lambda: len(handled) == 4, 20, "four jobs handled")
    await conn.commit_offsets()
    await first.close()

    second = mux_factory(group)
    again, on_again = collector()
    await second.new_bytes_connection("worker").consume_topic(on_again, topic)
    await second.start()
    redelivered = await next_message(again)
    assert redelivered.value == b"j2"  # at-least-once: resumes after the last marked one
    assert (await next_message(again)).value == b"j3"


async def test_an_offset_is_committed_only_once_every_watching_connection_marked_it(
        mux_factory: MuxFactory) -> None:
    topic, group = unique("audit"), unique("auditors")
    mux = mux_factory(group)
    fast, slow = mux.new_bytes_connection("fast"), mux.new_bytes_connection("slow")
    fast_seen, on_fast = collector()
    slow_seen, on_slow = collector()
    await fast.consume_topic(on_fast, topic)
    await slow.consume_topic(on_slow, topic)
    await mux.start()
    for i in range(3):
        await fast.new_sync_publisher(topic).put(None, f"a{i}")
    fast_msgs = [await next_message(fast_seen) for _ in range(3)]
    slow_msgs = [await next_message(slow_seen) for _ in range(3)]
    for message in fast_msgs:
        fast.mark_offset(message)
    slow.mark_offset(slow_msgs[0])
    await mux.commit_offsets()
    await mux.close()

    again = mux_factory(group)
    seen, on_seen = collector()
    await again.new_bytes_connection("slow").consume_topic(on_seen, topic)
    await again.start()
    assert (await next_message(seen)).value == b"a1"  # slow had only marked a0


async def test_stop_consuming_ends_one_connection_and_a_topic_can_be_added_after_start(
        mux_factory: MuxFactory) -> None:
    topic, extra = unique("news"), unique("extra")
    mux = mux_factory()
    quitter, stayer = mux.new_bytes_connection("quitter"), mux.new_bytes_connection("stayer")
    quitter_seen, on_quitter = collector()
    stayer_seen, on_stayer = collector()
    await quitter.consume_topic(on_quitter, topic)
    await stayer.consume_topic(on_stayer, topic)
    await mux.start()
    publisher = stayer.new_sync_publisher(topic)
    await publisher.put(None, "before")
    assert (await next_message(quitter_seen)).value == b"before"
    assert (await next_message(stayer_seen)).value == b"before"

    await quitter.stop_consuming(topic)
    with pytest.raises(SubscriptionError, match="does not consume"):
        await quitter.stop_consuming(topic)
    await publisher.put(None, "after")
    assert (await next_message(stayer_seen)).value == b"after"
    assert quitter_seen.empty()

    # A topic watcher added after start: the group takes the new topic in.
    await quitter.consume_topic(on_quitter, extra)
    await quitter.new_sync_publisher(extra).put(None, "late")
    assert (await next_message(quitter_seen, 30)).value == b"late"
    assert sorted(mux.topics) == sorted([topic, extra])


async def test_publishers_before_start_and_after_close_fail_clearly(
        mux_factory: MuxFactory) -> None:
    topic = unique("early")
    mux = mux_factory()
    conn = mux.new_bytes_connection("early")
    with pytest.raises(PublishError, match="not connected"):
        await conn.new_sync_publisher(topic).put(None, "x")
    errors: asyncio.Queue[ProducerError] = asyncio.Queue()
    conn.new_async_publisher(topic, on_error=errors.put_nowait).put(None, "x", metadata=7)
    failed = await asyncio.wait_for(errors.get(), 5)
    assert failed.metadata == 7 and "not connected" in str(failed.error)

    await mux.start()
    await mux.close()
    await mux.close()  # idempotent
    with pytest.raises(PublishError, match="closed"):
        await conn.new_sync_publisher(topic).put(None, "x")
    other = Multiplexer(mux.config, "g")
    other.new_bytes_connection("a")
    with pytest.raises(ValueError, match="exists"):
        other.new_proto_connection("a")


async def test_an_async_publisher_refuses_beyond_max_pending(mux_factory: MuxFactory) -> None:
    topic = unique("burst")
    mux = mux_factory(max_pending=5)
    await mux.start()
    successes: list[ProducerMessage] = []
    errors: list[ProducerError] = []
    publisher = mux.new_bytes_connection("burst").new_async_publisher(
        topic, on_success=successes.append, on_error=errors.append)
    for i in range(8):
        publisher.put(None, f"m{i}", metadata=i)  # all in one go: nothing confirmed yet
    assert await publisher.flush(20)
    await until(lambda: len(successes) + len(errors) == 8, 5, "every message reported")
    assert [m.metadata for m in successes] == [0, 1, 2, 3, 4]
    assert [e.metadata for e in errors] == [5, 6, 7]
    assert all(isinstance(e.error, QueueFullError) for e in errors)
    # Confirmed offsets are consecutive, in the order of put().
    assert [m.offset for m in successes] == list(range(successes[0].offset,
                                                        successes[0].offset + 5))


async def test_close_with_the_broker_gone_fails_pending_messages_in_bounded_time(
        own_kafka: KafkaBroker) -> None:
    mux = Multiplexer(client_config(own_kafka, request_timeout=30.0), unique("group"))
    await mux.start()
    errors: list[ProducerError] = []
    publisher = mux.new_bytes_connection("late").new_async_publisher(unique("late"),
                                                                     on_error=errors.append)
    publisher.put(None, "warm-up")  # the topic's metadata is known from here on
    assert await publisher.flush(20)
    own_kafka.kill()
    for i in range(3):
        publisher.put(None, f"lost-{i}", metadata=i)
    begin = time.monotonic()
    await mux.close()  # far sooner than request-timeout (30s)
    assert time.monotonic() - begin < 12
    assert sorted(e.metadata for e in errors) == [0, 1, 2]
    assert all(isinstance(e.error, PublishError) for e in errors)

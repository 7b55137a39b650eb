"""Issue 7 figures: sync and async publish throughput with 1 KiB messages, end-to-end
latency (publish to a watcher on the same multiplexer), and the multiplexer's
overhead against raw aiokafka with the same settings, measured in the same run
(rounds alternate raw and mux; the median round counts).

    python -m bench.kafka [--bootstrap HOST:PORT] [--messages 50000] [--sync 2000]
                          [--latency 1000] [--rounds 3]

Without --bootstrap a throw-away broker is started (tests/servers/kafka.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench._common import Figure, collect, percentile, report
from sidecar.messaging.kafka import BytesMessage, ClientConfig, Multiplexer
from sidecar.messaging.kafka.client import ProducerError, ProducerMessage

VALUE = b"v" * 1024
LINGER = 0.005
BATCH = 262_144  # what the client uses (sidecar/messaging/kafka/client/_aio.py)


#: Arguments under `python -m bench --quick`.
QUICK_ARGS = ["--messages", "10000", "--sync", "500", "--latency", "200", "--rounds", "1"]


def topic() -> str:
    return f"bench-{uuid.uuid4().hex[:8]}"


def raw_producer(bootstrap: str, linger: float) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=int(linger * 1000),
                            max_batch_size=BATCH)


@dataclass(frozen=True)
class Run:
    messages: int
    seconds: float
    #: CPU seconds of this process (client and aiokafka; the broker is another process).
    cpu: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu / self.messages * 1e6


async def raw_async(bootstrap: str, count: int) -> Run:
    producer = raw_producer(bootstrap, LINGER)
    await producer.start()
    try:
        name = topic()
        await producer.send_and_wait(name, VALUE)  # topic created, metadata cached
        done = asyncio.Event()
        confirmed = 0

        # Done-callbacks, as the async producer uses: cheaper than gathering 50k futures.
        def delivered(future: asyncio.Future[Any]) -> None:
            nonlocal confirmed
            future.result()
            confirmed += 1
            if confirmed == count:
                done.set()

        begin, cpu = time.perf_counter(), time.process_time()
        for i in range(count):
            future = await producer.send(name, VALUE, key=str(i % 64).encode())
            future.add_done_callback(delivered)
        await done.wait()
        return Run(count, time.perf_counter() - begin, time.process_time() - cpu)
    finally:
        await producer.stop()


async def raw_batches(bootstrap: str, count: int) -> Run:
    """aiokafka's batch API by hand (what the async producer uses): one future per batch."""
    producer = raw_producer(bootstrap, LINGER)
    await producer.start()
    try:
        name = topic()
        await producer.send_and_wait(name, VALUE)
        futures = []
        begin, cpu = time.perf_counter(), time.process_time()
        batch = producer.create_batch()
        for i in range(count):
            key = str(i % 64).encode()
            if batch.append(timestamp=None, key=key, value=VALUE, headers=[]) is None:
                batch.close()
                futures.append(await producer.send_batch(batch, name, partition=0))
                batch = producer.create_batch()
                batch.append(timestamp=None, key=key, value=VALUE, headers=[])
        batch.close()
        futures.append(await producer.send_batch(batch, name, partition=0))
        await asyncio.gather(*futures)
        return Run(count, time.perf_counter() - begin, time.process_time() - cpu)
    finally:
        await producer.stop()


async def mux_async(bootstrap: str, count: int) -> Run:
    mux = Multiplexer(ClientConfig(addrs=(bootstrap,), linger=LINGER, max_pending=count + 1),
                      "bench")
    await mux.start()
    try:
        name = topic()
        conn = mux.new_bytes_connection("bench")
        await conn.new_sync_publisher(name).put(None, VALUE)
        done = asyncio.Event()
        confirmed = 0
        failed: list[ProducerError] = []

        def on_success(_message: ProducerMessage) -> None:
            nonlocal confirmed
            confirmed += 1
            if confirmed == count:
                done.set()

        def on_error(error: ProducerError) -> None:
            failed.append(error)
            done.set()

        publisher = conn.new_async_publisher(name, on_success=on_success, on_error=on_error)
        begin, cpu = time.perf_counter(), time.process_time()
        for i in range(count):
            publisher.put(str(i % 64), VALUE, metadata=i)
        await done.wait()
        run = Run(count, time.perf_counter() - begin, time.process_time() - cpu)
        if failed:
            raise RuntimeError(f"{len(failed)} async publishes failed: {failed[0].error}")
        return run
    finally:
        await mux.close()


async def raw_sync(bootstrap: str, count: int) -> Run:
    producer = raw_producer(bootstrap, 0.0)
    await producer.start()
    try:
        name = topic()
        await producer.send_and_wait(name, VALUE)
        begin, cpu = time.perf_counter(), time.process_time()
        for i in range(count):
            await producer.send_and_wait(name, VALUE, key=str(i % 64).encode())
        return Run(count, time.perf_counter() - begin, time.process_time() - cpu)
    finally:
        await producer.stop()


async def mux_sync(bootstrap: str, count: int) -> Run:
    mux = Multiplexer(ClientConfig(addrs=(bootstrap,)), "bench")
    await mux.start()
    try:
        name = topic()
        publisher = mux.new_bytes_connection("bench").new_sync_publisher(name)
        await publisher.put(None, VALUE)
        begin, cpu = time.perf_counter(), time.process_time()
        for i in range(count):
            await publisher.put(str(i % 64), VALUE)
        return Run(count, time.perf_counter() - begin, time.process_time() - cpu)
    finally:
        await mux.close()


async def raw_latency(bootstrap: str, count: int) -> list[float]:
    """Publish one message at a time; time until a group consumer has it."""
    name = topic()
    producer = raw_producer(bootstrap, 0.0)
    await producer.start()
    await producer.send_and_wait(name, b"warm-up")
    consumer = AIOKafkaConsumer(name, bootstrap_servers=bootstrap,
                                group_id=f"bench-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                fetch_max_wait_ms=500)
    await consumer.start()
    try:
        await consumer.getone()  # the warm-up: assignment done
        samples = []
        for _ in range(count):
            begin = time.perf_counter()
            await producer.send_and_wait(name, VALUE)
            await consumer.getone()
            samples.append(time.perf_counter() - begin)
        return samples
    finally:
        await consumer.stop()
        await producer.stop()


async def mux_latency(bootstrap: str, count: int) -> list[float]:
    name = topic()
    mux = Multiplexer(ClientConfig(addrs=(bootstrap,)), f"bench-{uuid.uuid4().hex[:6]}")
    conn = mux.new_bytes_connection("bench")
    queue: asyncio.Queue[BytesMessage] = asyncio.Queue()
    publisher = conn.new_sync_publisher(name)
    await conn.consume_topic(queue.put_nowait, name)
    try:
        await mux.start()
        await publisher.put(None, b"warm-up")
        await queue.get()
        samples = []
        for _ in range(count):
            begin = time.perf_counter()
            await publisher.put(None, VALUE)
            await queue.get()
            samples.append(time.perf_counter() - begin)
        return samples
    finally:
        await mux.close()


async def alternate(rounds: int, *runs: Callable[[], Awaitable[Any]]) -> list[list[Any]]:
    results: list[list[Any]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, into in zip(runs, results, strict=True):
            into.append(await run())
    return results


def compare(kind: str, raw_name: str, raws: list[Run], muxes: list[Run],
            target: str = "") -> None:
    raw_rate = statistics.median(r.rate for r in raws)
    mux_rate = statistics.median(r.rate for r in muxes)
    raw_cpu = statistics.median(r.cpu_us for r in raws)
    mux_cpu = statistics.median(r.cpu_us for r in muxes)
    report(f"{kind}: raw aiokafka {raw_name}", raw_rate, "msg/s", f"{raw_cpu:.1f} us CPU/msg")
    report(f"{kind}: mux throughput below raw {raw_name}",
           (raw_rate - mux_rate) / raw_rate * 100, "%", target)
    report(f"{kind}: mux CPU per message above raw {raw_name}",
           (mux_cpu - raw_cpu) / raw_cpu * 100, "%", target)


def summary(kind: str, muxes: list[Run], target: str = "") -> None:
    rate = statistics.median(r.rate for r in muxes)
    cpu = statistics.median(r.cpu_us for r in muxes)
    report(f"{kind} publish, 1 KiB, {muxes[0].messages} msgs (mux)", rate, "msg/s",
           f"{cpu:.1f} us CPU/msg  {target}")


async def run(bootstrap: str, args: argparse.Namespace) -> None:
    n = args.messages
    muxes, raws, batches = await alternate(
        args.rounds, lambda: mux_async(bootstrap, n), lambda: raw_async(bootstrap, n),
        lambda: raw_batches(bootstrap, n))
    summary("async", muxes, "target >= 30,000")
    compare("async", "send()", raws, muxes, "target <= 10 %")
    compare("async", "batch API", batches, muxes)
    muxes, raws = await alternate(args.rounds, lambda: mux_sync(bootstrap, args.sync),
                                  lambda: raw_sync(bootstrap, args.sync))
    summary("sync (one at a time)", muxes)
    compare("sync", "send_and_wait()", raws, muxes, "target <= 10 %")

    raw_samples, mux_samples = await alternate(
        1, lambda: raw_latency(bootstrap, args.latency),
        lambda: mux_latency(bootstrap, args.latency))
    raw_ms = [s * 1000 for s in raw_samples[0]]
    mux_ms = [s * 1000 for s in mux_samples[0]]
    report("end-to-end latency p50 (sync put -> watcher, mux)", percentile(mux_ms, 50), "ms")
    report("end-to-end latency p99 (mux)", percentile(mux_ms, 99), "ms")
    report("end-to-end latency p50 (raw aiokafka)", percentile(raw_ms, 50), "ms")
    report("end-to-end latency p99 (raw aiokafka)", percentile(raw_ms, 99), "ms")
    report("latency overhead of the multiplexer (p50)",
           (percentile(mux_ms, 50) - percentile(raw_ms, 50)) / percentile(raw_ms, 50) * 100, "%")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", help="an existing broker; default: start one")
    parser.add_argument("--messages", type=int, default=50_000, help="async messages per round")
    parser.add_argument("--sync", type=int, default=2_000, help="sync messages per round")
    parser.add_argument("--latency", type=int, default=1_000, help="latency samples")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    # aiokafka logs a warning for every topic it creates on first use.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    print("kafka (issue 7)")
    if args.bootstrap:
        asyncio.run(run(args.bootstrap, args))
        return
    from tests.servers.kafka import KafkaBroker

    broker = KafkaBroker(heap="1g")
    try:
        broker.start()
        asyncio.run(run(broker.bootstrap, args))
    finally:
        broker.close()


def figures(argv: list[str] | None = None) -> list[Figure]:
    """What ``main(argv)`` reports, as records (``python -m bench`` writes BENCHMARKS.md)."""
    return collect(main, argv)


if __name__ == "__main__":
    main()

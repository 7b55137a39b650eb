"""Producers: a sync one (``send`` returns where the message landed, or raises) and an
async one (``send`` returns at once; callbacks report each message's fate).

aiokafka is imported by ``start()``, not by this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from functools import partial
from typing import Any

from ..errors import (
    ClientClosedError,
    KafkaMessagingError,
    KafkaUnavailableError,
    PublishError,
    PublishTimeoutError,
    QueueFullError,
    describe,
)
from .config import ClientConfig
from .message import (
    ErrorCallback,
    ProducerError,
    ProducerMessage,
    SuccessCallback,
    as_bytes,
)

log = logging.getLogger("sidecar.kafka")


class _Producer:
    """Start, stop and metadata shared by both producers (one aiokafka producer each)."""

    def __init__(self, config: ClientConfig, *, linger: float, name: str) -> None:
        self.config = config
        self.name = name
        self._linger = linger
        self._producer: Any = None
        self._closed = False

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        """Connect to the brokers; raises KafkaUnavailableError (and may be retried)."""
        if self._closed:
            raise ClientClosedError(f"{self.name}: the producer is closed")
        if self._producer is not None:
            return
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
        self._producer = producer

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
        except Exception as exc:
            raise _publish_error(topic, exc) from exc
        # Waiting on the future without cancelling it: aiokafka owns it. aiokafka
        # fails it after request-timeout; the margin only guards against a hang.
        await asyncio.wait({future}, timeout=self.config.request_timeout + 5)
        if not future.done():
            raise _publish_error(topic, TimeoutError())
        error = future.exception()
        if error is not None:
            raise _publish_error(topic, error) from error
        metadata = future.result()
        if metadata is None:  # required-acks "none": the broker says nothing back
            return ProducerMessage(topic, key_bytes, value_bytes,
                                   -1 if partition is None else partition, -1, -1, None,
                                   tuple(header_list))
        return ProducerMessage(topic, key_bytes, value_bytes, metadata.partition, metadata.offset,
                               metadata.timestamp, None, tuple(header_list))


#: A queued async message: the record reported back, the partition asked for, the callbacks.
_Pending = tuple[ProducerMessage, int | None, SuccessCallback | None, ErrorCallback | None]


class AsyncProducer(_Producer):
    """``send`` queues the message and returns at once; batches go out every ``linger``.

    Each message's fate is reported to its ``on_success(ProducerMessage)`` or
    ``on_error(ProducerError)`` callback, which get back the caller's
    ``metadata``. Callbacks run in the event loop: keep them short. At most
    ``max_pending`` messages wait for confirmation; beyond that ``send``
    reports QueueFullError to ``on_error`` (call ``flush()`` to wait for room).
    """

    def __init__(self, config: ClientConfig, *, name: str = "kafka-async") -> None:
        super().__init__(config, linger=config.linger, name=name)
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = 0
        self._pump_task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Messages queued or sent but not yet confirmed."""
        return self._in_flight

    async def start(self) -> None:
        await super().start()
        if self._pump_task is None:
            self._pump_task = asyncio.create_task(self._pump(), name=f"{self.name}-pump")

    def send(self, topic: str, value: bytes | str | None, *, key: bytes | str | None = None,
             partition: int | None = None, headers: Iterable[tuple[str, bytes]] = (),
             metadata: Any = None, on_success: SuccessCallback | None = None,
             on_error: ErrorCallback | None = None) -> None:
        # The hot path of every async publisher: type() checks instead of calls.
        if key is not None and type(key) is not bytes:
            key = as_bytes(key, "key")
        if value is not None and type(value) is not bytes:
            value = as_bytes(value, "value")
        item: _Pending = (ProducerMessage(topic, key, value,
                                          -1 if partition is None else partition, -1, -1,
                                          metadata, tuple(headers) if headers else ()),
                          partition, on_success, on_error)
        if self._pump_task is None or self._closed:
            error: PublishError = PublishError(
                f"{topic}: {self.name} is closed" if self._closed
                else f"{topic}: not connected to {self.config.bootstrap} yet", topic=topic)
            asyncio.get_running_loop().call_soon(self._report, item, error, False)
            return
        if self._in_flight >= self.config.max_pending:
            error = QueueFullError(f"{topic}: {self._in_flight} messages await confirmation "
                                   f"(max-pending {self.config.max_pending})", topic=topic)
            asyncio.get_running_loop().call_soon(self._report, item, error, False)
            return
        queue = self._queue
        queue.append(item)
        self._in_flight += 1
        if self._in_flight == 1:
            self._idle.clear()
        if len(queue) == 1:  # the pump may be waiting for work
            self._wakeup.set()

    async def flush(self, max_wait: float | None = None) -> bool:
        """Wait until every message sent so far is confirmed or failed; False if
        that took longer than ``max_wait`` s."""
        try:
            async with asyncio.timeout(max_wait):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self, grace: float = 5.0) -> None:
        self._closed = True
        deadline = time.monotonic() + grace
        if self._pump_task is not None and self._producer is not None:
            await self.flush(grace)
        task, self._pump_task = self._pump_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._queue:
            self._report(self._queue.popleft(),
                         PublishError(f"{self.name} closed before sending the message"))
        await super().stop(max(0.1, deadline - time.monotonic()))

    async def _pump(self) -> None:
        producer = self._producer
        queue = self._queue
        wakeup = self._wakeup
        while True:
            if not queue:
                wakeup.clear()
                await wakeup.wait()
                continue
            item = queue.popleft()
            message, partition = item[0], item[1]
            try:
                if partition is not None:
                    await self._check_partition(message.topic, partition)
                future = await producer.send(message.topic, message.value, key=message.key,
                                             partition=partition,
                                             headers=list(message.headers)
                                             if message.headers else None)
            except asyncio.CancelledError:
                queue.appendleft(item)
                raise
            except Exception as exc:  # noqa: BLE001 - reported to the message's callback
                self._report(item, exc if isinstance(exc, PublishError)
                             else _publish_error(message.topic, exc))
                continue
            future.add_done_callback(partial(self._delivered, item))

    def _delivered(self, item: _Pending, future: asyncio.Future[Any]) -> None:
        message = item[0]
        if future.cancelled():
            self._report(item, PublishError(f"{message.topic}: the send was cancelled",
                                            topic=message.topic))
            return
        exc = future.exception()
        if exc is not None:
            self._report(item, _publish_error(message.topic, exc))
            return
        metadata = future.result()
        if metadata is not None:  # None with required-acks "none": nothing comes back
            message.partition = metadata.partition
            message.offset = metadata.offset
            message.timestamp = metadata.timestamp
        self._report(item, None)

    def _report(self, item: _Pending, error: PublishError | None, counted: bool = True) -> None:
        if counted:  # refused messages never entered the queue
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()
        message, _, on_success, on_error = item
        try:
            if error is None:
                if on_success is not None:
                    on_success(message)
            elif on_error is not None:
                on_error(ProducerError(message, error))
            else:
                log.warning("%s: a message to %s was not written: %s", self.name, message.topic,
                            error)
        except Exception:
            log.exception("%s: a publish callback failed", self.name)


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

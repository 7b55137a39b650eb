"""The async producer: ``send`` returns at once; callbacks report each message's fate.

Queued messages are packed into record batches (one per partition, up to
256 KiB) and handed to aiokafka with its batch API: one future per batch
rather than per message keeps the client's CPU cost per message below raw
``AIOKafkaProducer.send``. aiokafka is imported by ``start()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from sidecar.agent.tasks import cancel_and_wait, spawn

from ..errors import PublishError, QueueFullError
from .config import ClientConfig
from .message import ErrorCallback, ProducerError, ProducerMessage, SuccessCallback, as_bytes
from .producer import _Producer, _publish_error

log = logging.getLogger("sidecar.kafka")

#: More than a record's framing (length, attributes, deltas, key/value lengths) takes.
_RECORD_OVERHEAD = 128

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
        #: The aiokafka producer and the error that broke its sequence, for the pump.
        self._broken: tuple[Any, BaseException] | None = None

    @property
    def pending(self) -> int:
        """Messages queued or sent but not yet confirmed."""
        return self._in_flight

    async def start(self) -> None:
        await super().start()
        if self._pump_task is None:
            self._pump_task = spawn(self._pump(), f"{self.name}-pump", on_crash=self._pump_died)

    def _pump_died(self, error: BaseException) -> None:
        # A bug, not an outage (those are reported per message): fail what waits.
        self._closed = True
        while self._queue:
            self._report(self._queue.popleft(),
                         PublishError(f"{self.name}: the send loop died: {error!r}"))

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
        if task is not None and not task.done():  # a dead one was reported when it died
            await cancel_and_wait(task)
        while self._queue:
            self._report(self._queue.popleft(),
                         PublishError(f"{self.name} closed before sending the message"))
        await super().stop(max(0.1, deadline - time.monotonic()))

    async def _pump(self) -> None:
        queue = self._queue
        wakeup = self._wakeup
        while True:
            if not queue:
                wakeup.clear()
                await wakeup.wait()
                # Let the rest of a burst arrive, so that it leaves as one batch.
                if self._linger > 0:
                    await asyncio.sleep(self._linger)
            broken, self._broken = self._broken, None
            if broken is not None:
                await self._renew_if_broken(*broken)
            await self._drain(len(queue))

    async def _drain(self, count: int) -> None:
        """Pack the next ``count`` queued messages into batches and hand them over."""
        from . import _aio

        producer = self._producer
        queue = self._queue
        limit = self.config.max_message_bytes
        partitioner = _aio.partitioner(self.config.partitioner)
        known: dict[str, tuple[list[int], list[int]]] = {}
        batches: dict[tuple[str, int], tuple[Any, list[_Pending]]] = {}
        item: _Pending | None = None
        try:
            for _ in range(count):
                item = queue.popleft()
                message, partition = item[0], item[1]
                topic, headers = message.topic, list(message.headers)
                try:
                    partitions = known.get(topic)
                    if partitions is None:
                        partitions = known[topic] = await _aio.partitions(producer, topic)
                    partition = _place(message, partition, partitions, partitioner,
                                       headers=headers, limit=limit)
                except Exception as exc:  # noqa: BLE001 - reported to the message's callback
                    self._report(item, _publish_error(topic, exc))
                    item = None
                    continue
                slot = (topic, partition)
                entry = batches.get(slot)
                if entry is None:
                    entry = batches[slot] = (producer.create_batch(), [])
                appended = entry[0].append(timestamp=None, key=message.key, value=message.value,
                                           headers=headers)
                if appended is None:  # full: send it, start the next one with this message
                    await self._submit(topic, partition, *entry)
                    entry = batches[slot] = (producer.create_batch(), [])
                    appended = entry[0].append(timestamp=None, key=message.key,
                                               value=message.value, headers=headers)
                message.timestamp = appended.timestamp
                entry[1].append(item)
                item = None
            while batches:
                (topic, partition), entry = next(iter(batches.items()))
                await self._submit(topic, partition, *entry)
                del batches[(topic, partition)]
        except asyncio.CancelledError:
            # Not handed to aiokafka: back to the queue, where stop() fails them.
            unsent = [pending for _, items in batches.values() for pending in items]
            if item is not None:
                unsent.append(item)
            queue.extendleft(reversed(unsent))
            raise

    async def _submit(self, topic: str, partition: int, batch: Any,
                      items: list[_Pending]) -> None:
        batch.close()
        try:
            # Waits while the previous batch of this partition is still queued (backpressure).
            future = await self._producer.send_batch(batch, topic, partition=partition)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the messages' callbacks
            error = _publish_error(topic, exc)
            for item in items:
                self._report(item, error)
            items.clear()
            return
        future.add_done_callback(partial(self._delivered, list(items), partition,
                                         self._producer))
        items.clear()

    def _delivered(self, items: list[_Pending], partition: int, producer: Any,
                   future: asyncio.Future[Any]) -> None:
        topic = items[0][0].topic
        if future.cancelled():
            error: PublishError | None = PublishError(f"{topic}: the send was cancelled",
                                                      topic=topic)
        else:
            exc = future.exception()
            error = None if exc is None else _publish_error(topic, exc)
            if exc is not None and self._broken is None:
                self._broken = (producer, exc)  # the pump renews it if it must
                self._wakeup.set()
        if error is not None:
            for item in items:
                self._report(item, error)
            return
        metadata = future.result()
        # None with required-acks "none": the broker says nothing back.
        base = metadata.offset if metadata is not None and metadata.offset >= 0 else None
        log_time = metadata.timestamp if metadata is not None else -1
        for index, item in enumerate(items):
            message = item[0]
            message.partition = partition
            if base is not None:
                message.offset = base + index
            if log_time != -1:  # LogAppendTime topics: the broker's clock
                message.timestamp = log_time
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


def _place(message: ProducerMessage, partition: int | None,
           partitions: tuple[list[int], list[int]], partitioner: Callable[..., int], *,
           headers: list[tuple[str, bytes]], limit: int) -> int:
    """The partition ``message`` goes to; PublishError if it cannot be sent at all."""
    from . import _aio

    topic = message.topic
    if partition is None:
        every = partitions[0]
        # One partition: no need to hash the key (both hashes are pure Python).
        partition = every[0] if len(every) == 1 else partitioner(message.key, *partitions)
    elif partition not in partitions[0]:
        raise PublishError(f"topic {topic} has no partition {partition} "
                           f"(it has {partitions[0]})", topic=topic)
    if not headers and (len(message.key or b"") + len(message.value or b"")
                        + _RECORD_OVERHEAD <= limit):
        return partition  # clearly small enough: skip the exact size computation
    size = _aio.record_size(message.key, message.value, headers)
    if size > limit:
        raise PublishError(f"{topic}: the message is {size} bytes, over "
                           f"max-message-bytes ({limit})", topic=topic)
    return partition

"""Watch subscriptions: a bounded queue per subscriber, so a slow one never blocks a writer.

The writer only appends to each subscriber's deque (or counts a drop); events
are consumed by the subscriber's own task (callbacks) or by its ``async for``
loop (streams). A subscriber that falls ``max_pending`` events behind is
*overflowed*: the events after that point are dropped and counted, a warning
is logged once, and when it has consumed the queue it receives one
``resync`` event telling it to read the mapping again.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

from sidecar.agent.tasks import cancel_and_wait, spawn

from .api import MappingEvent, WatchCallback

log = logging.getLogger("sidecar.idxmap")

V = TypeVar("V")


class Subscription(Generic[V]):
    """One subscriber's queue and counters; see :class:`EventStream` and :class:`CallbackWatch`."""

    def __init__(self, title: str, subscriber: str, max_pending: int,
                 on_close: Callable[[Subscription[V]], None]) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self.title = title
        self.subscriber = subscriber
        self.max_pending = max_pending
        #: Events were dropped and the resync event has not been consumed yet.
        self.overflowed = False
        #: Events this subscriber never saw, over its lifetime.
        self.dropped = 0
        #: Times it fell behind by more than ``max_pending``.
        self.overflows = 0
        self._missed = 0
        self._queue: deque[MappingEvent[V]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._on_close = on_close

    @property
    def pending(self) -> int:
        """Events queued and not consumed yet."""
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def _offer(self, event: MappingEvent[V]) -> bool:
        """Queue ``event``; False when it was dropped. Called by the writer: must stay cheap."""
        if self.overflowed or len(self._queue) >= self.max_pending:
            if not self.overflowed:
                self.overflowed = True
                self.overflows += 1
                log.warning(
                    "idxmap %s: subscriber %s is more than %d events behind; dropping its "
                    "events until it catches up, then it gets a resync event",
                    self.title or "(untitled)", self.subscriber, self.max_pending)
            self.dropped += 1
            self._missed += 1
            return False
        self._queue.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        return True

    async def _next(self) -> MappingEvent[V] | None:
        """The next event, the resync marker after an overflow, or None once closed."""
        while True:
            if self._closed:
                return None
            if self._queue:
                return self._queue.popleft()
            if self.overflowed:
                missed, self._missed = self._missed, 0
                self.overflowed = False
                log.info("idxmap %s: subscriber %s caught up after missing %d events",
                         self.title or "(untitled)", self.subscriber, missed)
                return MappingEvent(self.title, "", None, None, resync=True, missed=missed)
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _detach(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.clear()
            self._on_close(self)
            self._wake()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.title}/{self.subscriber} pending={self.pending} "
                f"dropped={self.dropped}{' closed' if self._closed else ''}>")


class EventStream(Subscription[V]):
    """``async for event in stream``; ends when the stream or its mapping is closed.

    Use it as an async context manager (or call :meth:`close`) so that the
    mapping stops queueing for it.
    """

    def __aiter__(self) -> EventStream[V]:
        return self

    async def __anext__(self) -> MappingEvent[V]:
        event = await self._next()
        if event is None:
            raise StopAsyncIteration
        return event

    async def get(self) -> MappingEvent[V]:
        """The next event; raises LookupError once the stream is closed."""
        event = await self._next()
        if event is None:
            raise LookupError(f"event stream {self.subscriber!r} is closed")
        return event

    def close(self) -> None:
        """Stop receiving events; a pending ``async for`` ends."""
        self._detach()

    async def __aenter__(self) -> EventStream[V]:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class CallbackWatch(Subscription[V]):
    """Runs the callback of ``watch()`` for each event in a named task of its own.

    A callback that raises is logged and counted in ``errors``; the watch goes
    on with the next event.
    """

    def __init__(self, title: str, subscriber: str, max_pending: int,
                 on_close: Callable[[Subscription[V]], None],
                 callback: WatchCallback[V]) -> None:
        super().__init__(title, subscriber, max_pending, on_close)
        self.callback = callback
        #: Callback invocations that raised.
        self.errors = 0
        self._task = spawn(self._deliver(), f"idxmap-watch:{title}:{subscriber}")
        self._task.add_done_callback(self._task_done)

    async def _deliver(self) -> None:
        while (event := await self._next()) is not None:
            try:
                result = self.callback(event)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                self.errors += 1
                log.exception("idxmap %s: watch callback of %s failed on %s",
                              self.title or "(untitled)", self.subscriber,
                              "resync" if event.resync else repr(event.name))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._detach()  # however it ended (spawn logs a crash)

    async def close(self) -> None:
        """Stop the watch; events still queued are not delivered. Idempotent."""
        self._detach()
        task = self._task
        if task is asyncio.current_task():  # closed from its own callback: it ends by itself
            return
        if not task.done():
            await cancel_and_wait(task)

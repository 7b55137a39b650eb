"""Status notifications: what happened to a process, delivered without ever blocking the watcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any

from sidecar.logging.context import bind_plugin

from .status import ProcessState

log = logging.getLogger("sidecar.exec.processmanager")

DEFAULT_BUFFER = 1000


class EventKind(StrEnum):
    #: A new run began (start, restart); a STATUS ``running`` always follows at once.
    STARTED = "started"
    #: The state changed: running, sleeping, ..., ``terminated`` when it exited.
    STATUS = "status"
    #: It exited on its own and is restarted after ``delay`` seconds.
    BACKOFF = "backoff"
    #: It exited on its own and no restart is left.
    GAVE_UP = "gave-up"


@dataclass(frozen=True, slots=True)
class ProcessEvent:
    """One notification; ``name`` is the name the process is managed under."""

    name: str
    kind: EventKind
    state: ProcessState
    previous: ProcessState
    pid: int | None
    #: Unix time of the event.
    time: float
    #: For an exit: the exit code, or -N when killed by signal N; None when unknown
    #: (an attached process that is not the sidecar's child).
    returncode: int | None = None
    #: The exit was asked for (stop, kill, restart, close), not a crash.
    expected: bool = False
    #: Automatic restarts so far.
    restarts: int = 0
    #: BACKOFF: seconds until the next start.
    delay: float | None = None

    @property
    def label(self) -> str:
        """``started`` for a start, else the state: what the seed's hooks call the process state."""
        return "started" if self.kind is EventKind.STARTED else self.state.value

    @classmethod
    def now(cls, **fields: Any) -> ProcessEvent:
        return cls(time=time.time(), **fields)


class Subscription:
    """An async iterator of events with a bounded buffer: when full, the oldest is dropped.

    Use ``async for event in subscription`` or ``await subscription.get()``;
    it ends when the process is deleted or the manager closes, or on ``close()``.
    """

    def __init__(self, maxsize: int = DEFAULT_BUFFER,
                 on_close: Callable[[Subscription], None] | None = None) -> None:
        if maxsize < 1:
            raise ValueError("a subscription buffer holds at least one event")
        self._events: deque[ProcessEvent] = deque(maxlen=maxsize)
        self._wakeup = asyncio.Event()
        self._ended = False
        self._on_close = on_close
        #: Events dropped because the reader was too slow.
        self.dropped = 0

    def push(self, event: ProcessEvent) -> None:
        if self._ended:
            return
        if len(self._events) == self._events.maxlen:
            self.dropped += 1
        self._events.append(event)
        self._wakeup.set()

    def end(self) -> None:
        """No more events will come; buffered ones can still be read."""
        self._ended = True
        self._wakeup.set()

    def close(self) -> None:
        self.end()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close(self)

    def pending(self) -> list[ProcessEvent]:
        """The buffered events, without waiting."""
        events = list(self._events)
        self._events.clear()
        return events

    async def get(self) -> ProcessEvent:
        """The next event; StopAsyncIteration once ended (bound it with ``asyncio.timeout``)."""
        return await self.__anext__()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ProcessEvent:
        while not self._events:
            if self._ended:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._events.popleft()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()


Listener = Callable[[ProcessEvent], None]


class Fanout:
    """Delivers each event to subscriptions, user queues and callbacks; never waits on any."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._queues: list[asyncio.Queue[ProcessEvent]] = []
        #: Each as given (to remove it) and as called: as the plugin that added it, not
        #: as the watcher that reports the event (whose plugin log lines would name).
        self._listeners: list[tuple[Listener, Listener]] = []
        self._warned: set[int] = set()

    def subscribe(self, maxsize: int = DEFAULT_BUFFER) -> Subscription:
        subscription = Subscription(maxsize, self._forget)
        self._subscriptions.append(subscription)
        return subscription

    def _forget(self, subscription: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    def add_queue(self, queue: asyncio.Queue[ProcessEvent]) -> None:
        self._queues.append(queue)

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append((listener, bind_plugin(listener)))

    def remove_listener(self, listener: Listener) -> None:
        for entry in self._listeners:
            if entry[0] == listener:
                self._listeners.remove(entry)
                return

    def emit(self, event: ProcessEvent) -> None:
        for subscription in list(self._subscriptions):
            subscription.push(event)
        for queue in self._queues:
            _put_dropping_oldest(queue, event, self._warned)
        for listener, bound in list(self._listeners):
            try:
                bound(event)
            except Exception:
                log.exception("process event listener %r failed on %s", listener, event)

    def end(self) -> None:
        for subscription in list(self._subscriptions):
            subscription.end()
        self._subscriptions.clear()
        self._queues.clear()
        self._listeners.clear()


def _put_dropping_oldest(queue: asyncio.Queue[ProcessEvent], event: ProcessEvent,
                         warned: set[int]) -> None:
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:
        pass
    else:
        return
    with contextlib.suppress(asyncio.QueueEmpty):
        queue.get_nowait()
        queue.task_done()
    if id(queue) not in warned:
        warned.add(id(queue))
        log.warning("process %s: notification queue is full; dropping the oldest events",
                    event.name)
    with contextlib.suppress(asyncio.QueueFull):
        queue.put_nowait(event)

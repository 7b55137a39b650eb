"""The tracer: named time measurements, kept in order, with per-entity averages.

Start times are taken with :func:`time.perf_counter` (monotonic, precise);
entries also carry the wall-clock time the event began, for display.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar, cast, overload

P = ParamSpec("P")
R = TypeVar("R")

_default_log = logging.getLogger("sidecar.measure")


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One measured event."""

    #: Position among all the events this tracer has recorded since the last clear.
    index: int
    #: What was measured: a function, a plugin step, any string.
    entity: str
    #: When it began, Unix seconds.
    start: float
    #: How long it took, seconds.
    duration: float

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "entity": self.entity, "start": self.start,
                "duration": self.duration}


@dataclass(frozen=True)
class Trace:
    """What :meth:`Tracer.get` returns: a snapshot, unaffected by later events."""

    name: str
    entries: tuple[TraceEntry, ...]
    #: Mean duration per entity, over every event recorded since the last clear.
    average: Mapping[str, float] = field(default_factory=dict)
    #: From the first event's start to the last event's end, seconds (0 when empty).
    overall: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "overall": self.overall,
            "entries": [e.to_dict() for e in self.entries],
            "average": dict(self.average),
        }


class Tracer:
    """cn-infra's ``measure`` tracer: ``log_time(entity, start)``, ``get()``, ``clear()``.

    ::

        tracer = Tracer("resync")
        start = time.perf_counter()
        ...
        tracer.log_time("load", start)

        with tracer.measure("store"):
            ...

        @tracer.traced()
        async def fetch(): ...

    Safe to use from several threads. ``max_entries`` bounds the kept entries
    of a tracer that runs for ever (averages still count every event).
    """

    def __init__(self, name: str, log: logging.Logger | None = None,
                 max_entries: int | None = None) -> None:
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.name = name
        self._log = log or _default_log
        self._lock = threading.Lock()
        self._entries: deque[TraceEntry] = deque(maxlen=max_entries)
        self._totals: dict[str, tuple[int, float]] = {}
        self._next_index = 0
        self._first_start: float | None = None
        self._last_end: float | None = None

    def log_time(self, entity: str, start: float) -> TraceEntry:
        """Record ``entity`` as run from ``start`` (a :func:`time.perf_counter` value) to now."""
        now = time.perf_counter()
        wall_now = time.time()
        duration = max(now - start, 0.0)
        wall_start = wall_now - duration
        with self._lock:
            entry = TraceEntry(self._next_index, entity, wall_start, duration)
            self._next_index += 1
            self._entries.append(entry)
            count, total = self._totals.get(entity, (0, 0.0))
            self._totals[entity] = (count + 1, total + duration)
            if self._first_start is None or wall_start < self._first_start:
                self._first_start = wall_start
            if self._last_end is None or wall_now > self._last_end:
                self._last_end = wall_now
        if self._log.isEnabledFor(logging.DEBUG):
            self._log.debug("%s: %s took %.3f ms", self.name, entity, duration * 1000)
        return entry

    def get(self) -> Trace:
        """Every kept entry, the average per entity and the overall duration."""
        with self._lock:
            entries = tuple(self._entries)
            average = {name: total / count for name, (count, total) in self._totals.items()}
            overall = (self._last_end - self._first_start
                       if self._first_start is not None and self._last_end is not None else 0.0)
        return Trace(self.name, entries, average, overall)

    def clear(self) -> None:
        """Forget every entry and average; indexes start again at 0."""
        with self._lock:
            self._entries.clear()
            self._totals.clear()
            self._next_index = 0
            self._first_start = self._last_end = None

    @contextmanager
    def measure(self, entity: str) -> Iterator[None]:
        """Time the ``with`` block (also when it raises)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.log_time(entity, start)

    @overload
    def traced(self, entity: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]: ...

    @overload
    def traced(self, entity: Callable[P, R]) -> Callable[P, R]: ...

    def traced(self, entity: Any = None) -> Any:
        """Decorator timing every call of a function or coroutine function.

        ``@tracer.traced`` names the entries after the function's qualified
        name; ``@tracer.traced("name")`` chooses the name.
        """
        if callable(entity):
            return self._wrap(entity, entity.__qualname__)

        def decorator(func: Callable[P, R]) -> Callable[P, R]:
            return self._wrap(func, entity or func.__qualname__)

        return decorator

    def _wrap(self, func: Callable[P, R], entity: str) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[P, Awaitable[Any]], func)

            @functools.wraps(func)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = time.perf_counter()
                try:
                    return await async_func(*args, **kwargs)
                finally:
                    self.log_time(entity, start)

            return cast(Callable[P, R], timed_async)

        @functools.wraps(func)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.log_time(entity, start)

        return timed

    def __repr__(self) -> str:
        return f"<Tracer {self.name!r}: {len(self._entries)} entries>"

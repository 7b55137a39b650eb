"""NamedMapping: values by name, secondary indexes, and watches; in memory, in one event loop.

Writes are synchronous and never wait for a subscriber: the writer appends
one shared, immutable event to each subscriber's bounded queue. Index answers
(``list_names``) are immutable tuples rebuilt lazily after a change, so a
read-mostly index costs a couple of dictionary look-ups per query.

Not thread-safe: use a mapping from the event loop that owns it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from .api import DEFAULT_MAX_PENDING, IndexFunction, MappingEvent, WatchCallback
from .watch import CallbackWatch, EventStream, Subscription

V = TypeVar("V")

_MISSING: object = object()
# One name's index entries, compact because there is one per name: a flat tuple
# ``(field, values, field, values, ...)`` where a single value is the string itself.
_Entries = tuple[str | tuple[str, ...], ...]


def _pairs(entries: _Entries) -> Iterator[tuple[str, str | tuple[str, ...]]]:
    it = iter(entries)
    return zip(it, it, strict=True)  # type: ignore[arg-type]


class _Bucket:
    """The names with one (field, value) entry, in insertion order, and the cached answer."""

    __slots__ = ("answer", "names")

    def __init__(self) -> None:
        self.names: dict[str, None] = {}
        self.answer: tuple[str, ...] | None = None


class NamedMapping(Generic[V]):
    """cn-infra's NamedMappingRW: ``put``/``update``/``delete`` plus the read side.

    ``index_function(value)`` returns ``{field: [values]}``; ``list_names(field,
    value)`` then answers which names have that entry, exactly, after any
    sequence of overwrites and deletes.
    """

    def __init__(self, title: str = "", index_function: IndexFunction[V] | None = None, *,
                 max_pending: int = DEFAULT_MAX_PENDING) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        self._title = title
        self._index_function = index_function
        self._max_pending = max_pending
        self._values: dict[str, V] = {}
        self._entries: dict[str, _Entries] = {}
        self._index: dict[str, dict[str, _Bucket]] = {}
        self._subscriptions: dict[str, Subscription[V]] = {}
        self._targets: tuple[Subscription[V], ...] = ()
        self._dropped = 0

    @property
    def title(self) -> str:
        return self._title

    # -- write side ---------------------------------------------------------
    def put(self, name: str, value: V) -> None:
        """Add or replace ``name``; its index entries are recomputed from ``value``.

        If the index function raises, nothing changes and the error propagates.
        """
        if type(name) is not str:
            raise TypeError(f"idxmap {self._title}: a name must be a str, got {name!r}")
        entries = self._entries_of(value) if self._index_function is not None else None
        prev = self._values.get(name, _MISSING)
        self._values[name] = value
        old = self._entries.get(name)
        if old != entries:
            if old:
                self._unindex(name, old)
            if entries:
                self._add_index(name, entries)
                self._entries[name] = entries
            elif old:
                del self._entries[name]
        if self._targets:
            if prev is _MISSING:
                event = MappingEvent(self._title, name, value, None)
            else:
                event = MappingEvent(self._title, name, value, prev, update=True)  # type: ignore[arg-type]
            self._emit(event)

    def update(self, name: str, value: V) -> bool:
        """Replace ``name`` only if it is present; returns whether it was."""
        if name not in self._values:
            return False
        self.put(name, value)
        return True

    def delete(self, name: str) -> V | None:
        """Remove ``name``; returns its value, or None if it was not there."""
        prev = self._values.pop(name, _MISSING)
        if prev is _MISSING:
            return None
        old = self._entries.pop(name, None)
        if old:
            self._unindex(name, old)
        if self._targets:
            self._emit(MappingEvent(self._title, name, None, prev, deleted=True))  # type: ignore[arg-type]
        return prev  # type: ignore[return-value]

    def clear(self) -> None:
        """Delete every name, with a delete event for each."""
        for name in list(self._values):
            self.delete(name)

    # -- read side ----------------------------------------------------------
    def get_value(self, name: str) -> V | None:
        return self._values.get(name)

    def list_all_names(self) -> list[str]:
        return list(self._values)

    def list_names(self, field: str, value: str) -> tuple[str, ...]:
        values = self._index.get(field)
        if values is None:
            return ()
        bucket = values.get(value)
        if bucket is None:
            return ()
        answer = bucket.answer
        if answer is None:
            answer = bucket.answer = tuple(bucket.names)
        return answer

    def list_fields(self, name: str) -> dict[str, list[str]]:
        entries = self._entries.get(name)
        if not entries:
            return {}
        return {f: [v] if type(v) is str else list(v) for f, v in _pairs(entries)}

    def list_values(self, field: str) -> list[str]:
        return list(self._index.get(field, ()))

    def items(self) -> Iterator[tuple[str, V]]:
        """``(name, value)`` pairs in insertion order (do not write while iterating)."""
        return iter(self._values.items())

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __repr__(self) -> str:
        return (f"<NamedMapping {self._title!r} names={len(self._values)} "
                f"fields={sorted(self._index)} subscribers={len(self._targets)}>")

    # -- watch --------------------------------------------------------------
    def watch(self, subscriber: str, callback: WatchCallback[V], *,
              max_pending: int | None = None) -> CallbackWatch[V]:
        """Call ``callback(event)`` for every later change, in order, from a task of its own.

        Needs a running event loop. Close the returned watch (or the mapping)
        to stop it. Reading the mapping and then calling ``watch`` without an
        ``await`` in between gives a consistent start: no change is lost or
        seen twice.
        """
        self._check_subscriber(subscriber)
        watch = CallbackWatch(self._title, subscriber, max_pending or self._max_pending,
                              self._remove_subscription, callback)
        self._add_subscription(watch)
        return watch

    def events(self, subscriber: str, *, max_pending: int | None = None) -> EventStream[V]:
        """An async iterator of every later change: ``async with m.events("me") as stream:``."""
        self._check_subscriber(subscriber)
        stream: EventStream[V] = EventStream(self._title, subscriber,
                                             max_pending or self._max_pending,
                                             self._remove_subscription)
        self._add_subscription(stream)
        return stream

    def subscriptions(self) -> list[Subscription[V]]:
        """The open watches and streams (their ``pending``, ``dropped`` and ``overflowed``)."""
        return list(self._targets)

    @property
    def dropped_events(self) -> int:
        """Events that subscribers did not receive because they were too far behind, in total."""
        return self._dropped

    async def close(self) -> None:
        """End every watch and stream (idempotent); the data stays readable and writable."""
        for subscription in list(self._targets):
            if isinstance(subscription, CallbackWatch):
                await subscription.close()
            else:
                subscription._detach()

    # -- internals ----------------------------------------------------------
    def _entries_of(self, value: V) -> _Entries | None:
        assert self._index_function is not None
        raw = self._index_function(value)
        try:
            items = raw.items()
        except AttributeError:
            raise TypeError(f"idxmap {self._title}: the index function returned {raw!r}; "
                            "expected a mapping {field: [values]}") from None
        entries: list[str | tuple[str, ...]] = []
        for field, values in items:
            if isinstance(values, str):
                entries += (field, values)
                continue
            try:
                unique = tuple(dict.fromkeys(values))
            except TypeError:
                raise TypeError(f"idxmap {self._title}: the index function gave {values!r} "
                                f"for field {field!r}; expected a string or a list of them"
                                ) from None
            if len(unique) == 1 and type(unique[0]) is str:
                entries += (field, unique[0])
            elif unique:
                entries += (field, unique)
        return tuple(entries) if entries else None

    def _add_index(self, name: str, entries: _Entries) -> None:
        index = self._index
        for field, values in _pairs(entries):
            buckets = index.get(field)
            if buckets is None:
                buckets = index[field] = {}
            for value in (values,) if type(values) is str else values:
                bucket = buckets.get(value)
                if bucket is None:
                    bucket = buckets[value] = _Bucket()
                bucket.names[name] = None
                bucket.answer = None

    def _unindex(self, name: str, entries: _Entries) -> None:
        index = self._index
        for field, values in _pairs(entries):
            buckets = index[field]
            for value in (values,) if type(values) is str else values:
                bucket = buckets[value]
                del bucket.names[name]
                if bucket.names:
                    bucket.answer = None
                else:
                    del buckets[value]
            if not buckets:
                del index[field]

    def _emit(self, event: MappingEvent[V]) -> None:
        for subscription in self._targets:
            if not subscription._offer(event):
                self._dropped += 1

    def _check_subscriber(self, subscriber: str) -> None:
        if not subscriber:
            raise ValueError("a subscriber name must not be empty")
        if subscriber in self._subscriptions:
            raise ValueError(f"idxmap {self._title}: subscriber {subscriber!r} already watches; "
                             "close its watch first or pick another name")

    def _add_subscription(self, subscription: Subscription[V]) -> None:
        self._subscriptions[subscription.subscriber] = subscription
        self._targets = tuple(self._subscriptions.values())

    def _remove_subscription(self, subscription: Subscription[V]) -> None:
        if self._subscriptions.get(subscription.subscriber) is subscription:
            del self._subscriptions[subscription.subscriber]
            self._targets = tuple(self._subscriptions.values())

"""What other plugins see of an indexed map: events, and the read and write sides.

As in cn-infra, a consumer (for example the user of a cache) is handed the
read side only (:class:`NamedMappingReader`); the owner keeps the write side.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, Protocol, TypeVar

V = TypeVar("V")

#: ``value -> {field: [values]}``: the secondary index entries of one value. A
#: plain string counts as one value (``{"state": "OK"}`` is ``{"state": ["OK"]}``).
IndexFunction = Callable[[V], Mapping[str, Iterable[str] | str]]

#: Called for every event of a watch, in order; may be a coroutine function.
WatchCallback = Callable[["MappingEvent[V]"], Awaitable[object] | object]

#: Events a subscriber may fall behind by before it is overflowed (see MappingEvent.resync).
DEFAULT_MAX_PENDING = 1024


@dataclass(frozen=True, slots=True)
class MappingEvent(Generic[V]):
    """One change of a :class:`~sidecar.idxmap.NamedMapping` (cn-infra's NamedMappingGenericEvent).

    A put has ``value`` set and ``update`` true when it replaced ``prev_value``;
    a delete has ``deleted`` true, ``value`` None and the removed value in
    ``prev_value``.

    A subscriber that fell more than its ``max_pending`` events behind misses the
    events after that point; once it has consumed what was queued it gets one
    event with ``resync`` true (``name`` empty, ``missed`` the number of events
    it did not see) and should read the mapping again: its current contents
    already include everything that was missed.
    """

    title: str
    name: str
    value: V | None
    prev_value: V | None
    deleted: bool = False
    update: bool = False
    resync: bool = False
    missed: int = 0


class Watching(Protocol):
    """What every subscription shows: who it is and how far behind it is."""

    @property
    def subscriber(self) -> str: ...

    @property
    def pending(self) -> int:
        """Events queued and not consumed yet."""
        ...

    @property
    def dropped(self) -> int:
        """Events this subscriber never saw, over its lifetime."""
        ...

    @property
    def closed(self) -> bool: ...


class Watch(Watching, Protocol):
    """A running ``watch()``: its callback runs in a task of its own until ``close()``."""

    @property
    def errors(self) -> int:
        """Callback invocations that raised."""
        ...

    async def close(self) -> None:
        """Stop the watch; events still queued are not delivered. Idempotent."""
        ...


class Events(Watching, Protocol[V]):
    """``events()``: ``async for`` (or ``await get()``) until it is closed."""

    def __aiter__(self) -> Events[V]: ...

    async def __anext__(self) -> MappingEvent[V]: ...

    async def get(self) -> MappingEvent[V]:
        """The next event; LookupError once the stream is closed."""
        ...

    def close(self) -> None: ...

    async def __aenter__(self) -> Events[V]: ...

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None: ...


class NamedMappingReader(Protocol[V]):
    """Read access: look-ups by name or secondary index, and watches (cn-infra NamedMapping)."""

    @property
    def title(self) -> str: ...

    def get_value(self, name: str) -> V | None:
        """The value stored under ``name``, or None."""
        ...

    def list_all_names(self) -> list[str]:
        """Every name, in insertion order."""
        ...

    def list_names(self, field: str, value: str) -> tuple[str, ...]:
        """Names whose index function gave ``value`` for ``field``; () when none."""
        ...

    def list_fields(self, name: str) -> dict[str, list[str]]:
        """The index entries of ``name`` (empty when unknown or not indexed)."""
        ...

    def list_values(self, field: str) -> list[str]:
        """The values of ``field`` that at least one name has."""
        ...

    def __len__(self) -> int: ...

    def __contains__(self, name: object) -> bool: ...

    def watch(self, subscriber: str, callback: WatchCallback[V], *,
              max_pending: int | None = None) -> Watch:
        """Call ``callback`` for every later change, from a task of its own."""
        ...

    def events(self, subscriber: str, *, max_pending: int | None = None) -> Events[V]:
        """An async iterator of every later change."""
        ...


class NamedMappingWriter(Protocol[V]):
    """Write access (cn-infra NamedMappingRW); kept by the owner of the data."""

    def put(self, name: str, value: V) -> None: ...

    def update(self, name: str, value: V) -> bool: ...

    def delete(self, name: str) -> V | None: ...

    def clear(self) -> None: ...

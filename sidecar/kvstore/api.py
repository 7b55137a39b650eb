"""The small interface that core plugins use to write to a key-value store.

It lives here, not in the etcd plugin, so that the status check never imports
the etcd client: the agent builder hands it whatever implements this.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Protocol


class KVUnavailableError(Exception):
    """The store cannot be reached now; try again later."""


class LeasedWriter(Protocol):
    """Writes keys that expire with this agent's lease (its session)."""

    async def commit(self, puts: Mapping[str, bytes], deletes: Collection[str] = ()) -> None:
        """Apply all puts (leased) and deletes in one transaction or raise KVUnavailableError."""
        ...

    def add_session_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every new session (first connect, reconnect, new lease),
        when keys written before may be gone."""
        ...

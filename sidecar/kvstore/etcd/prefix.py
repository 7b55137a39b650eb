"""Reading and watching a key prefix, for caches: consistent paged reads and a resumable watch.

Works on any aetcd client (the etcd plugin's ``client`` or a plain
``aetcd.Client``). aetcd and grpc are imported inside the functions, so
importing this module stays cheap.

Errors: :class:`~sidecar.kvstore.api.KVUnavailableError` when etcd cannot be
reached or the watch stream ends, :class:`RevisionCompactedError` (a subclass)
when the revision asked for is no longer in etcd's history.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, NamedTuple

from sidecar.agent.errors import reason
from sidecar.kvstore.api import KVUnavailableError

#: Keys per range request of :func:`read_prefix`; keeps each answer well below
#: gRPC's default 4 MiB message limit for typical values.
DEFAULT_PAGE_SIZE = 1000


class RevisionCompactedError(KVUnavailableError):
    """etcd has compacted its history past the revision that was asked for."""

    def __init__(self, compact_revision: int, detail: str = "") -> None:
        self.compact_revision = compact_revision
        super().__init__(detail or f"etcd history compacted up to revision {compact_revision}")


class KeyValue(NamedTuple):
    key: bytes
    value: bytes
    mod_revision: int


class Page(NamedTuple):
    """One answer of :func:`read_prefix`; every page of one read is at the same revision."""

    revision: int
    cluster_id: int
    kvs: list[KeyValue]


class WatchEvent(NamedTuple):
    deleted: bool
    key: bytes
    value: bytes
    #: The revision of the change (of the delete, for a delete).
    mod_revision: int


def prefix_range_end(prefix: bytes) -> bytes:
    """The end of the key range ``[prefix, end)`` holding every key that starts with ``prefix``."""
    end = bytearray(prefix)
    for i in reversed(range(len(end))):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # an all-0xff (or empty) prefix: to the end of the key space


async def read_prefix(client: Any, prefix: bytes, *, page_size: int = DEFAULT_PAGE_SIZE,
                      request_timeout: float = 5.0) -> AsyncIterator[Page]:
    """Yield the keys under ``prefix`` in pages, all read at the revision of the first one.

    A compaction past that revision between two pages raises
    RevisionCompactedError: start the read again.
    """
    from aetcd import rpc

    end = prefix_range_end(prefix)
    start = prefix
    revision = 0
    while True:
        request = rpc.RangeRequest(key=start, range_end=end, limit=page_size, revision=revision)
        reply = await _range(client, request, request_timeout)
        if revision == 0:
            revision = reply.header.revision
        kvs = [KeyValue(kv.key, kv.value, kv.mod_revision) for kv in reply.kvs]
        yield Page(revision, reply.header.cluster_id, kvs)
        if not reply.more or not kvs:
            return
        start = kvs[-1].key + b"\0"


async def current_revision(client: Any, prefix: bytes, *,
                           request_timeout: float = 5.0) -> tuple[int, int]:
    """``(cluster_id, revision)`` of the store now, with a count-only read of ``prefix``."""
    from aetcd import rpc

    request = rpc.RangeRequest(key=prefix, range_end=prefix_range_end(prefix), count_only=True)
    reply = await _range(client, request, request_timeout)
    return reply.header.cluster_id, reply.header.revision


async def _range(client: Any, request: Any, request_timeout: float) -> Any:
    import grpc

    try:
        async with asyncio.timeout(request_timeout):
            await client.connect()
            return await client.kvstub.Range(request, timeout=request_timeout,
                                             metadata=client.metadata)
    except asyncio.CancelledError:
        if not channel_closed():
            raise
        raise KVUnavailableError("etcd read failed: the connection was closed") from None
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.OUT_OF_RANGE:  # "required revision has been compacted"
            raise RevisionCompactedError(request.revision, exc.details() or "") from exc
        raise KVUnavailableError(f"etcd read failed: {exc.code().name}: {exc.details()}") from exc
    except TimeoutError as exc:
        raise KVUnavailableError(f"etcd read took longer than {request_timeout:g}s") from exc
    except Exception as exc:
        raise KVUnavailableError(f"etcd read failed: {reason(exc)}") from exc


class PrefixWatch:
    """The changes under a prefix from a start revision on: ``async for event in watch``.

    Iteration raises RevisionCompactedError when etcd no longer has that
    history, and KVUnavailableError when the stream breaks or ends; it never
    ends quietly. Call :meth:`cancel` when done.
    """

    def __init__(self, watch: Any, start_revision: int) -> None:
        self._watch = watch
        self.start_revision = start_revision

    def __aiter__(self) -> AsyncGenerator[WatchEvent, None]:
        return self._events()

    async def _events(self) -> AsyncGenerator[WatchEvent, None]:
        from aetcd import exceptions

        try:
            async for event in self._watch:
                kv = event.kv
                yield WatchEvent(event.kind == "DELETE", kv.key, kv.value, kv.mod_revision)
        except asyncio.CancelledError:
            if not channel_closed():
                raise
            raise KVUnavailableError("etcd watch broke: the connection was closed") from None
        except exceptions.RevisionCompactedError as exc:
            raise RevisionCompactedError(exc.compacted_revision) from exc
        except Exception as exc:
            raise KVUnavailableError(f"etcd watch broke: {reason(exc)}") from exc
        raise KVUnavailableError("etcd watch stream ended")

    async def cancel(self) -> None:
        """Stop the watch; never raises (the stream may already be gone)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._watch.cancel()


async def watch_prefix(client: Any, prefix: bytes, start_revision: int, *,
                       request_timeout: float = 5.0) -> PrefixWatch:
    """Start watching ``prefix`` from ``start_revision`` (inclusive); see :class:`PrefixWatch`."""
    from aetcd import exceptions

    try:
        async with asyncio.timeout(request_timeout):
            watch = await client.watch(prefix, range_end=prefix_range_end(prefix),
                                       start_revision=start_revision)
    except exceptions.RevisionCompactedError as exc:
        raise RevisionCompactedError(exc.compacted_revision) from exc
    except TimeoutError as exc:
        raise KVUnavailableError(f"etcd watch not created within {request_timeout:g}s") from exc
    except Exception as exc:
        raise KVUnavailableError(f"etcd watch failed: {reason(exc)}") from exc
    return PrefixWatch(watch, start_revision)


def channel_closed() -> bool:
    """In ``except asyncio.CancelledError``: True when it was not this task that was
    cancelled, but a gRPC call whose channel was closed (the etcd plugin closes its
    client when it moves to another one). That is a failed request, not a stop."""
    task = asyncio.current_task()
    return task is None or task.cancelling() == 0


__all__ = [
    "DEFAULT_PAGE_SIZE",
    "KeyValue",
    "Page",
    "PrefixWatch",
    "RevisionCompactedError",
    "WatchEvent",
    "current_revision",
    "prefix_range_end",
    "read_prefix",
    "watch_prefix",
]

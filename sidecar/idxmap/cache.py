"""CacheHelper: keeps a NamedMapping equal to an etcd prefix.

It reads the prefix (in pages, at one revision), puts every name, deletes the
names etcd no longer has, then watches from the next revision. When the watch
breaks (etcd down, connection lost) it reconnects and resumes from the last
revision it applied, so that the changes made meanwhile, deletes included,
are replayed in order; if etcd compacted that history away, or is not the
same store any more (other cluster, revision gone backwards), it reads the
whole prefix again instead. A mapping that a cache feeds belongs to the
cache: names it does not find in etcd are removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from types import TracebackType
from typing import Any, Generic, TypeVar

from sidecar.agent.api import deps_among
from sidecar.agent.errors import reason
from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.health.statuscheck.api import PluginState, StatusWriter
from sidecar.kvstore.etcd.prefix import (
    DEFAULT_PAGE_SIZE,
    RevisionCompactedError,
    WatchEvent,
    current_revision,
    read_prefix,
    watch_prefix,
)

from .codec import Decoder, NameFunction, as_decoder, json_value, strip_prefix
from .mapping import NamedMapping

log = logging.getLogger("sidecar.idxmap.cache")

V = TypeVar("V")

_DEFAULT_TIMEOUT = 5.0


class CacheHelper(Generic[V]):
    """A plugin (or an ``async with`` block) that mirrors ``prefix`` into ``mapping``.

    ``etcd`` is the etcd plugin (its current client is used, and the cache
    starts after it) or a plain ``aetcd.Client``. ``decode`` turns a value into
    what the mapping holds (JSON by default; a protobuf message class is
    accepted too); ``name_of`` turns a key into a name, or None to skip the key
    (by default the key without the prefix). A value that fails to decode is
    logged, counted in ``decode_errors`` and left out of the mapping.

    With ``statuscheck`` the cache reports under ``name``: INIT until the first
    read, OK while it follows etcd, ERROR while it cannot. It counts for the
    health ``groups`` given (none by default: an etcd outage must not take every
    pod out of service; ``("readiness",)`` when a pod cannot serve without it).
    """

    def __init__(
        self,
        mapping: NamedMapping[V],
        etcd: Any,
        prefix: str,
        *,
        name: str | None = None,
        decode: Decoder | type[Any] = json_value,
        name_of: NameFunction | None = None,
        statuscheck: StatusWriter | None = None,
        groups: Collection[str] = (),
        page_size: int = DEFAULT_PAGE_SIZE,
        operation_timeout: float | None = None,
        retry_interval: float = 0.2,
        max_retry_interval: float = 5.0,
    ) -> None:
        if not prefix:
            raise ValueError("a cache needs a non-empty key prefix")
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.name = name or f"cache-{mapping.title or prefix.strip('/')}"
        self.prefix = prefix
        self._mapping = mapping
        self._source = etcd
        self.deps = deps_among(etcd, statuscheck)
        self._prefix = prefix.encode()
        self._decode = as_decoder(decode)
        self._name_of = name_of or strip_prefix(prefix)
        self._statuscheck = statuscheck
        self._groups = tuple(groups)
        self._page_size = page_size
        config = getattr(etcd, "config", None)
        self._timeout = operation_timeout or getattr(config, "operation_timeout", None) \
            or _DEFAULT_TIMEOUT
        self._retry_min = retry_interval
        self._retry_max = max(max_retry_interval, retry_interval)
        self._mod_revisions: dict[str, int] = {}
        self._revision: int | None = None
        self._last_seen_revision = 0
        self._cluster_id: int | None = None
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._initialised = False
        #: The reason the cache is not following etcd now, if it is not.
        self.last_error: str | None = None
        #: Full reads of the prefix, resumed watches, compactions met, watch events applied,
        #: and values that could not be decoded.
        self.resyncs = 0
        self.resumes = 0
        self.compactions = 0
        self.events = 0
        self.decode_errors = 0

    # -- public API ----------------------------------------------------------
    @property
    def mapping(self) -> NamedMapping[V]:
        return self._mapping

    @property
    def synced(self) -> bool:
        """The watch is running: the mapping follows etcd from a consistent point.

        After a full read the mapping equals the prefix at ``revision``; after a
        resumed watch, the changes made while cut off are still being replayed
        (in order, within the next few milliseconds).
        """
        return self._synced.is_set()

    @property
    def revision(self) -> int | None:
        """The etcd revision the mapping reflects (None before the first read)."""
        return self._revision

    async def wait_synced(self) -> None:
        """Wait until the cache follows etcd (bound it with ``asyncio.timeout``)."""
        await self._synced.wait()

    # -- lifecycle -----------------------------------------------------------
    async def init(self) -> None:
        if self._statuscheck is not None:
            self._statuscheck.register(self.name, groups=self._groups)
        self._initialised = True

    async def after_init(self) -> None:
        if self._task is None:
            self._task = spawn(self._run(), f"idxmap-cache:{self.prefix}")
            self._task.add_done_callback(self._task_done)

    async def start(self) -> CacheHelper[V]:
        """Start following etcd outside an agent (``init`` and ``after_init`` in one)."""
        if not self._initialised:
            await self.init()
        await self.after_init()
        return self

    async def close(self) -> None:
        """Stop following etcd (idempotent); the mapping keeps its contents."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        self._synced.clear()

    async def __aenter__(self) -> CacheHelper[V]:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    # -- the loop ------------------------------------------------------------
    def _client(self) -> Any:
        # The etcd plugin may swap its client (endpoint fail-over): ask every time.
        return self._source if hasattr(self._source, "kvstub") else self._source.client

    async def _run(self) -> None:
        delay = self._retry_min
        was_following = False
        compacted_in_a_row = 0
        await self._wait_for_source()
        while True:
            try:
                client = self._client()
                await self._catch_up(client)
                assert self._revision is not None
                watch = await watch_prefix(client, self._prefix, self._revision + 1,
                                           request_timeout=self._timeout)
                self._following()
                delay, was_following, compacted_in_a_row = self._retry_min, True, 0
                events = aiter(watch)
                try:
                    async for event in events:
                        self._apply(event)
                finally:
                    await events.aclose()
                    await watch.cancel()
            except RevisionCompactedError as exc:
                self.compactions += 1
                self._revision = None
                self._synced.clear()
                log.warning("cache of %s: %s; reading the prefix again", self.prefix, exc)
                compacted_in_a_row += 1
                if compacted_in_a_row > 1:  # compacting faster than we read: do not hammer etcd
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect and catch up
                self._synced.clear()
                if was_following:
                    # A broken stream is often just a reconnect away: retry once before ERROR.
                    was_following = False
                    log.info("cache of %s: %s; reconnecting", self.prefix, exc)
                    continue
                self._failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                await self._wait_for_source()

    async def _wait_for_source(self) -> None:
        if getattr(self._source, "connected", True) is False:
            await self._source.wait_connected()

    async def _catch_up(self, client: Any) -> None:
        """Resume at ``revision`` when etcd still has that history, else read the prefix."""
        if self._revision is not None:
            cluster_id, now = await current_revision(client, self._prefix,
                                                     request_timeout=self._timeout)
            if cluster_id == self._cluster_id and now >= self._revision:
                self.resumes += 1
                log.info("cache of %s: resuming the watch after revision %d (etcd is at %d)",
                         self.prefix, self._revision, now)
                return
            log.warning("cache of %s: etcd is not the store we followed (cluster %x at revision "
                        "%d, we had cluster %x at %d); reading the prefix again", self.prefix,
                        cluster_id, now, self._cluster_id or 0, self._revision)
        await self._resync(client)

    async def _resync(self, client: Any) -> None:
        self._revision = None  # a read cut short must be redone, not resumed
        self.resyncs += 1
        seen: set[str] = set()
        revision = cluster_id = 0
        async for page in read_prefix(client, self._prefix, page_size=self._page_size,
                                      request_timeout=self._timeout):
            if not revision and (page.cluster_id != self._cluster_id
                                 or page.revision < self._last_seen_revision):
                # Another history: equal mod revisions no longer mean equal values.
                self._mod_revisions.clear()
            revision, cluster_id = page.revision, page.cluster_id
            for key, value, mod_revision in page.kvs:
                name = self._name(key)
                if name is None:
                    continue
                seen.add(name)
                if self._mod_revisions.get(name) != mod_revision or name not in self._mapping:
                    self._store(name, key, value, mod_revision)
        stale = [name for name in self._mapping.list_all_names() if name not in seen]
        for name in stale:
            self._mapping.delete(name)
            self._mod_revisions.pop(name, None)
        self._revision, self._cluster_id = revision, cluster_id
        self._last_seen_revision = revision
        log.info("cache of %s: read %d names at revision %d, removed %d stale", self.prefix,
                 len(seen), revision, len(stale))

    def _apply(self, event: WatchEvent) -> None:
        self._revision = self._last_seen_revision = event.mod_revision
        self.events += 1
        name = self._name(event.key)
        if name is None:
            return
        if event.deleted:
            self._mapping.delete(name)
            self._mod_revisions.pop(name, None)
        else:
            self._store(name, event.key, event.value, event.mod_revision)

    def _name(self, key: bytes) -> str | None:
        try:
            return self._name_of(key.decode())
        except Exception as exc:  # noqa: BLE001 - a user function; one bad key is skipped
            self.decode_errors += 1
            log.warning("cache of %s: key %r skipped: %s", self.prefix, key, exc)
            return None

    def _store(self, name: str, key: bytes, value: bytes, mod_revision: int) -> None:
        try:
            # The mapping's index function may reject a value too; put changes nothing then.
            self._mapping.put(name, self._decode(value))
        except Exception as exc:  # noqa: BLE001 - user functions; one bad value is left out
            self.decode_errors += 1
            log.warning("cache of %s: value of %s (revision %d) left out: %s", self.prefix,
                        key.decode(errors="replace"), mod_revision, reason(exc))
            self._mapping.delete(name)  # an old value would pretend to be current
            self._mod_revisions.pop(name, None)
            return
        self._mod_revisions[name] = mod_revision

    # -- status --------------------------------------------------------------
    def _following(self) -> None:
        if self.last_error is not None:
            log.info("cache of %s follows etcd again at revision %s", self.prefix,
                     self._revision)
        self.last_error = None
        self._synced.set()
        self._report(PluginState.OK)

    def _failed(self, exc: BaseException) -> None:
        error = f"cache of {self.prefix} is not following etcd: {reason(exc)}"
        if error != self.last_error:
            log.warning("%s; retrying", error)
        self.last_error = error
        self._report(PluginState.ERROR, error)

    def _report(self, state: PluginState, error: str | None = None) -> None:
        if self._statuscheck is not None:
            self._statuscheck.report_state_change(self.name, state, error)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:  # a bug: the loop handles every expected failure itself
            log.error("cache of %s stopped", self.prefix, exc_info=exc)
            self._synced.clear()
            self._report(PluginState.ERROR, f"cache of {self.prefix} stopped: {reason(exc)}")


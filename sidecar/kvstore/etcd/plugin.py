"""The etcd plugin: one connection, one lease (the agent's session), and its own status.

etcd being down never stops the agent: the plugin reports ERROR, keeps trying
in the background, and tells session listeners when a session is open again so
that they can write their keys again. With several endpoints, a session that
breaks moves to the next member first and reports ERROR only if that fails.

A reconnect keeps the agent's lease while etcd still knows it (etcd's lease
clocks stand still while it is down, and a new leader gives every lease its
full TTL again), so the keys never change lease and no watcher sees them
deleted and put back; a lease-ttl/3 cap on the reconnect wait gets the lease
refreshed before it can run out. Only a lease that has expired (its keys went
with it) is replaced by a new one: there is never a second lease to clean up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from sidecar.agent.api import deps_among
from sidecar.agent.errors import reason
from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.health.statuscheck.api import PluginState, StatusWriter
from sidecar.kvstore.api import KVUnavailableError

from .config import EtcdConfig
from .prefix import channel_closed

if TYPE_CHECKING:
    from ._client import EtcdClient

log = logging.getLogger("sidecar.etcd")


class EtcdPlugin:
    name = "etcd"

    def __init__(self, config: EtcdConfig | None = None,
                 statuscheck: StatusWriter | None = None) -> None:
        self.config = config or EtcdConfig()
        self.deps = deps_among(statuscheck)
        self._statuscheck = statuscheck
        self._client: EtcdClient | None = None
        self._endpoint_index = 0
        #: The agent's lease; kept while disconnected, to be refreshed on reconnect.
        self._lease_id: int | None = None
        self._session_listeners: list[Callable[[], None]] = []
        self._check_now = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None

    # -- public API ----------------------------------------------------------
    @property
    def client(self) -> EtcdClient:
        """The aetcd client; calls on it raise ``aetcd.ClientError`` subclasses."""
        if self._client is None:
            raise RuntimeError("the etcd plugin is not initialised")
        return self._client

    @property
    def endpoint(self) -> str:
        return self.config.endpoints[self._endpoint_index]

    @property
    def lease_id(self) -> int | None:
        """The lease of the open session (None while there is none)."""
        return self._lease_id if self._connected.is_set() else None

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def add_session_listener(self, callback: Callable[[], None]) -> None:
        self._session_listeners.append(callback)
        if self.lease_id is not None:
            callback()

    async def commit(self, puts: Mapping[str, bytes], deletes: Collection[str] = ()) -> None:
        """Put (attached to the agent's lease) and delete keys in one transaction."""
        lease = self.lease_id
        client = self._client
        if client is None or lease is None:
            raise KVUnavailableError(self._last_error or "no etcd session yet")
        ops: list[Any] = [client.transactions.put(k.encode(), v, lease=lease)
                          for k, v in puts.items()]
        ops += [client.transactions.delete(k.encode()) for k in deletes]
        try:
            async with asyncio.timeout(self.config.operation_timeout):
                await client.transaction(compare=[], success=ops, failure=[])
        except asyncio.CancelledError:
            if not channel_closed():
                raise
            raise KVUnavailableError("etcd write failed: the connection was closed for a "
                                     "reconnect") from None
        except Exception as exc:
            self._check_now.set()  # let the session loop find out what broke
            raise KVUnavailableError(f"etcd write failed: {reason(exc)}") from exc

    # -- lifecycle -----------------------------------------------------------
    async def init(self) -> None:
        from ._client import EtcdClient  # grpc is heavy: imported only when etcd is enabled

        self._client = EtcdClient(self.config, self.endpoint)
        if self._statuscheck is not None:
            # Only reports: an outage of the shared etcd must not fail any probe.
            self._statuscheck.register(self.name, groups=())

    async def after_init(self) -> None:
        self._task = spawn(
            self._session_loop(), "etcd-session",
            on_crash=lambda exc: self._report(PluginState.ERROR, f"session loop died: {exc}"))

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        client, self._client = self._client, None
        if client is not None:
            lease, self._lease_id = self._lease_id, None
            if lease is not None:
                # Our keys should disappear now, not a lease TTL later.
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await client.revoke_lease(lease)
            with contextlib.suppress(Exception):
                await client.close()

    # -- session -------------------------------------------------------------
    def _report(self, state: PluginState, error: str | None = None) -> None:
        if self._statuscheck is not None:
            self._statuscheck.report_state_change(self.name, state, error)

    async def _session_loop(self) -> None:
        backoff = 0.2
        # Often enough to refresh the lease before it runs out once etcd is back.
        longest = min(self.config.reconnect_interval, self.config.lease_ttl / 3)
        while True:
            try:
                await self._open_session()
                backoff = 0.2
                await self._keep_alive()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: reconnect
                if self._connected.is_set() and len(self.config.endpoints) > 1:
                    # A working session broke (its member died, or lost the others):
                    # the next member at once, and only if that fails too is it ERROR.
                    # A leader change would otherwise flag a third of a fleet.
                    self._connected.clear()
                    log.info("etcd session at %s ended (%s); moving to the next member",
                             self.endpoint, reason(exc))
                    await self._reconnect_client()
                    continue
                self._lost(exc)
                await self._reconnect_client()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, longest)

    async def _open_session(self) -> None:
        client = self.client
        async with asyncio.timeout(self.config.dial_timeout):
            await client.connect()
            await client.status()
        async with asyncio.timeout(self.config.operation_timeout):
            lease, kept = await self._lease(client)
        self._lease_id = lease
        self._last_error = None
        self._connected.set()
        log.info("etcd session open at %s (%s lease %x, ttl %gs)", self.endpoint,
                 "same" if kept else "new", lease, self.config.lease_ttl)
        self._report(PluginState.OK)
        for listener in list(self._session_listeners):
            try:
                listener()
            except Exception:
                log.exception("etcd session listener failed")

    async def _lease(self, client: EtcdClient) -> tuple[int, bool]:
        """``(lease, kept)``: the agent's lease if etcd still knows it (refreshed), else a
        new one."""
        held = self._lease_id
        if held is not None:
            reply = await client.refresh_lease(held)
            if reply is not None and reply.TTL > 0:
                return held, True
            self._lease_id = None
            log.warning("etcd lease %x expired while etcd was out of reach: the agent's keys "
                        "went with it; writing them again on a new lease", held)
        granted = await client.lease(round(self.config.lease_ttl))
        return int(granted.id), False

    async def _keep_alive(self) -> None:
        interval = max(self.config.lease_ttl / 3, 0.5)
        client = self.client
        while True:
            with contextlib.suppress(TimeoutError):  # not wait_for: it can lose a cancel
                async with asyncio.timeout(interval):
                    await self._check_now.wait()
            self._check_now.clear()
            lease = self._lease_id
            assert lease is not None
            async with asyncio.timeout(self.config.operation_timeout):
                reply = await client.refresh_lease(lease)
            if reply is None or reply.TTL <= 0:
                # Expired while we could not reach etcd: our keys are gone with it.
                self._lease_id = None
                raise KVUnavailableError("the agent's etcd lease expired")
            self._report(PluginState.OK)

    def _lost(self, exc: BaseException) -> None:
        error = f"etcd unreachable at {self.endpoint}: {reason(exc)}"
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected or error != self._last_error:
            log.warning("%s", error)
        self._last_error = error
        self._report(PluginState.ERROR, error)

    async def _reconnect_client(self) -> None:
        """A new client for the next endpoint (the same one if there is one): a new
        channel tries at once, where the old one would wait out gRPC's backoff."""
        from ._client import EtcdClient

        old = self._client
        self._endpoint_index = (self._endpoint_index + 1) % len(self.config.endpoints)
        self._client = EtcdClient(self.config, self.endpoint)
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()


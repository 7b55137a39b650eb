"""Publishes the agent's and each plugin's status under ``/vnf-agent/<label>/check/status/v1/``.

A change is written at once, and only the keys that changed; every
``publish-interval`` all keys are re-put in one transaction to refresh
``last_update``. Writes happen in a background task, so an unreachable store
never blocks a probe or a plugin; a new session ends any retry wait at once and
everything is re-put, so what changed during an outage reaches the store as
soon as it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Protocol

from sidecar.agent.api import deps_among
from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.kvstore.api import KVUnavailableError, LeasedWriter

from .api import AgentStatus, StatusReader
from .config import StatusCheckConfig

log = logging.getLogger("sidecar.statuscheck.publisher")

AGENT_KEY = "check/status/v1/agent"
PLUGIN_KEY_PREFIX = "check/status/v1/plugin/"
_RETRY_MIN = 0.2
_RETRY_MAX = 5.0


def status_documents(status: AgentStatus) -> dict[str, tuple[object, bytes]]:
    """Key suffix -> (what counts as a change, JSON value)."""
    docs: dict[str, tuple[object, bytes]] = {}
    agent = status.to_dict(with_plugins=False)
    docs[AGENT_KEY] = ((agent["state"], agent["last_change"]), _dump(agent))
    for name, plugin in status.plugins.items():
        data = plugin.to_dict()
        docs[PLUGIN_KEY_PREFIX + name] = (
            (data["state"], data["last_change"], data.get("error")), _dump(data))
    return docs


def _dump(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


class ConfiguredReader(StatusReader, Protocol):
    """The status check as the publisher reads it: the reader, and the publish-interval."""

    @property
    def config(self) -> StatusCheckConfig: ...


class StatusPublisher:
    """A plugin that mirrors a StatusCheck into a LeasedWriter (etcd)."""

    name = "status-publisher"

    def __init__(
        self,
        statuscheck: ConfiguredReader,
        writer: LeasedWriter,
        prefix: Callable[[], str],
        publish_interval: float | None = None,
    ) -> None:
        self.deps = deps_among(statuscheck, writer)
        self._statuscheck = statuscheck
        self._writer = writer
        self._prefix = prefix
        self._interval = publish_interval or statuscheck.config.publish_interval
        self._dirty = asyncio.Event()
        self._session = asyncio.Event()
        self._published: dict[str, object] = {}
        self._resync = True
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.errors = 0

    def _on_change(self) -> None:
        self._dirty.set()

    def _on_session(self) -> None:
        self._resync = True
        self._session.set()
        self._dirty.set()

    async def init(self) -> None:
        self._statuscheck.add_listener(self._on_change)
        self._writer.add_session_listener(self._on_session)

    async def after_init(self) -> None:
        self._task = spawn(self._run(), "status-publisher")

    async def _run(self) -> None:
        retry = _RETRY_MIN
        next_refresh = time.monotonic()
        self._dirty.set()
        while True:
            timeout = max(next_refresh - time.monotonic(), 0)
            # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancellation that
            # arrives as the event is set, and close() would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._dirty.wait()
            self._dirty.clear()
            refresh = self._resync or time.monotonic() >= next_refresh
            # Cleared before the attempt: a session that opens while it fails still counts.
            self._session.clear()
            try:
                await self.publish_once(full=refresh)
            except KVUnavailableError as exc:
                self.errors += 1
                log.debug("status not published: %s", exc)
                self._resync = True
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(retry):
                        await self._session.wait()
                retry = _RETRY_MIN if self._session.is_set() else min(retry * 2, _RETRY_MAX)
                self._dirty.set()
                continue
            retry = _RETRY_MIN
            if refresh:
                self._resync = False
                next_refresh = time.monotonic() + self._interval

    async def publish_once(self, *, full: bool = False) -> int:
        """Write what changed (everything if ``full``); returns the number of keys written."""
        prefix = self._prefix()
        docs = status_documents(self._statuscheck.agent_status())
        puts = {
            prefix + key: value
            for key, (significant, value) in docs.items()
            if full or self._published.get(key) != significant
        }
        deletes = [prefix + key for key in self._published if key not in docs]
        if not puts and not deletes:
            return 0
        await self._writer.commit(puts, deletes)
        self.commits += 1
        self._published = {key: significant for key, (significant, _) in docs.items()}
        return len(puts)

    async def close(self) -> None:
        self._statuscheck.remove_listener(self._on_change)
        task, self._task = self._task, None
        await cancel_and_wait(task)

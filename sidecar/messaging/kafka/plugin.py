"""The Kafka plugin: the agent's multiplexer, its status, and status events to Kafka.

Brokers that are down at start-up never stop the agent: the plugin is ERROR
(in neither probe group by default: the probes stay up, the agent state says
ERROR), keeps trying in the background and turns OK by itself: INIT -> ERROR -> OK, never
back to INIT. Until then the connection loop reports the state; once
connected, it comes from the brokers' metadata, fetched by a pull probe.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sidecar.agent.api import deps_among
from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.health.statuscheck.api import PluginState, StatusReader, StatusWriter

from ._lognoise import LIBRARY_LOGGER, RepeatSummary
from .config import KafkaConfig
from .errors import describe
from .events import StatusEvents
from .mux import BytesConnection, Multiplexer, ProtoConnection

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

log = logging.getLogger("sidecar.kafka")

#: How long one metadata probe may take before it counts as "no broker".
PROBE_TIMEOUT = 2.0


class KafkaPlugin:
    """``kafka.conf`` made into a running multiplexer.

    Other plugins make their connections in their own ``init`` (this plugin
    must be among their ``deps``); topic watchers added then join the group
    when the multiplexer first connects.
    """

    name = "kafka"

    def __init__(self, config: KafkaConfig | None = None,
                 statuscheck: StatusWriter | None = None, label: str = "cninfra-sidecar", *,
                 status_reader: StatusReader | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.config = config or KafkaConfig()
        self.label = label
        self.deps = deps_among(statuscheck)
        self._statuscheck = statuscheck
        self.mux = Multiplexer(self.config.client_config(label), self.config.group_id or label,
                               name="kafka", prev_value_keys=self.config.prev_value_keys)
        self.events: StatusEvents | None = None
        if self.config.status_topic:
            self.events = StatusEvents(self.mux, self.config.status_topic, label, status_reader,
                                       backlog=self.config.status_backlog)
            if registry is not None:
                from .metrics import KafkaCollector  # prometheus_client only with metrics on

                registry.register(KafkaCollector(self.events))
        self._connect_task: asyncio.Task[None] | None = None
        #: aiokafka repeats each connection error many times a second while a broker is down.
        self._library_logs = RepeatSummary()
        self._summary_task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._last_error: str | None = None

    # -- public API ----------------------------------------------------------------
    def new_bytes_connection(self, name: str) -> BytesConnection:
        return self.mux.new_bytes_connection(name)

    def new_proto_connection(self, name: str) -> ProtoConnection:
        return self.mux.new_proto_connection(name)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def publish_event(self, event: Mapping[str, Any]) -> None:
        """Queue a JSON record (a supervisor program event) for ``status-topic``.

        Safe to call from any code on the agent's loop, before or after Kafka is
        reachable; a no-op when no ``status-topic`` is configured.
        """
        if self.events is not None:
            self.events.publish_event(event)

    # -- lifecycle -------------------------------------------------------------------
    async def init(self) -> None:
        # Bad TLS files or an unreadable password file are configuration errors:
        # fail the start-up with them rather than retry forever.
        tls, sasl = self.config.tls, self.config.sasl
        if tls is not None and tls.enabled:
            await asyncio.to_thread(tls.ssl_context)
        if sasl is not None:
            await asyncio.to_thread(sasl.resolve_password)
        if self._statuscheck is not None:
            # INIT until the first attempt; the probe joins once connected (see _connect_loop).
            # Only reports: a broker outage must not fail any probe.
            self._statuscheck.register(self.name, groups=())

    async def after_init(self) -> None:
        if self._summary_task is None:
            # Its loggers exist once it is imported (in a thread: it takes a while).
            await asyncio.to_thread(importlib.import_module, LIBRARY_LOGGER)
            self._library_logs.install()
            self._summary_task = spawn(self._summarise_library_logs(), "kafka-log-summary")
        if self.events is not None:
            self.events.start()
        if self._connect_task is None:
            self._connect_task = spawn(
                self._connect_loop(), "kafka-connect",
                on_crash=lambda exc: self._report(PluginState.ERROR,
                                                  f"connection loop died: {describe(exc)}"))

    async def close(self) -> None:
        task, self._connect_task = self._connect_task, None
        await cancel_and_wait(task)
        if self.events is not None:
            await self.events.close()
        try:
            await self.mux.close()
        finally:
            summary, self._summary_task = self._summary_task, None
            await cancel_and_wait(summary)
            self._library_logs.uninstall()

    async def _summarise_library_logs(self) -> None:
        """Log the counts of repeats that stopped (a new record logs them otherwise)."""
        while True:
            await asyncio.sleep(1.0)
            self._library_logs.flush()

    # -- status ----------------------------------------------------------------------
    async def _connect_loop(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with asyncio.timeout(self.config.request_timeout):
                    await self.mux.start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: try again
                error = f"no broker reachable at {', '.join(self.config.addrs)}: {describe(exc)}"
                if error != self._last_error:
                    log.warning("%s (retrying every %gs at most)", error,
                                self.config.reconnect_interval)
                self._last_error = error
                # Pushed as well as probed: readiness should not wait a probe interval.
                self._report(PluginState.ERROR, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.reconnect_interval)
                continue
            self._last_error = None
            self._connected.set()
            self._report(PluginState.OK)
            if self._statuscheck is not None:
                # Only now: a probe taken while connecting could answer "connecting" after
                # an attempt had already failed, taking the plugin from ERROR back to INIT.
                self._statuscheck.register(self.name, probe=self._probe, groups=())
            return

    async def _probe(self) -> object:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                await self.mux.brokers()
        except TimeoutError:
            return PluginState.ERROR, (f"no broker reachable at {', '.join(self.config.addrs)}: "
                                       f"no metadata within {PROBE_TIMEOUT:g}s")
        except Exception as exc:  # noqa: BLE001 - the probe's answer is the reason
            return PluginState.ERROR, describe(exc)
        return None

    def _report(self, state: PluginState, error: str | None = None) -> None:
        if self._statuscheck is not None:
            self._statuscheck.report_state_change(self.name, state, error)

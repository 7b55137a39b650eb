"""The fleet view: a CacheHelper over every agent's status key, served over REST.

Agents publish ``/vnf-agent/<label>/check/status/v1/agent`` (see the status
check); this plugin keeps all of them in a NamedMapping indexed by state, so
``GET /fleet?state=ERROR`` is an index look-up, not a scan of etcd.

It watches the whole prefix (etcd cannot watch a pattern), so every status
change of every agent reaches it: enable it on the few sidecars that serve
the view, not on every pod.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from sidecar.agent.api import deps_among
from sidecar.health.statuscheck.api import StatusWriter
from sidecar.health.statuscheck.publisher import AGENT_KEY
from sidecar.idxmap import CacheHelper, NamedMapping, NamedMappingReader, NameFunction
from sidecar.rest.api import HTTPHandlers

from .config import FleetConfig
from .view import GET_DOC, LIST_DOC, AgentStatusDoc, FleetView, by_state, decode_agent_status

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import Collector

log = logging.getLogger("sidecar.fleet")


def agent_key_label(prefix: str) -> NameFunction:
    """Key -> label for ``<prefix><label>/check/status/v1/agent``; None for any other key."""
    suffix = "/" + AGENT_KEY
    start = len(prefix)

    def label_of(key: str) -> str | None:
        if not key.endswith(suffix):
            return None
        label = key[start:-len(suffix)]
        return label if label and "/" not in label else None

    return label_of


class FleetPlugin:
    """Caches the fleet's agent statuses and serves ``/fleet``."""

    name = "fleet"

    def __init__(self, config: FleetConfig, etcd: Any, rest: HTTPHandlers,
                 statuscheck: StatusWriter | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self._rest = rest
        self._registry = registry
        self._collector: Collector | None = None
        self._mapping: NamedMapping[AgentStatusDoc] = NamedMapping("fleet", by_state)
        self.cache = CacheHelper(
            self._mapping, etcd, config.prefix, name=self.name, decode=decode_agent_status,
            name_of=agent_key_label(config.prefix), statuscheck=statuscheck)
        self.view = FleetView(self._mapping, self.cache)
        self.deps = deps_among(etcd, rest, statuscheck)

    @property
    def agents(self) -> NamedMappingReader[AgentStatusDoc]:
        """Label -> agent status document, indexed by ``state`` (INIT/OK/ERROR)."""
        return self._mapping

    # -- handlers ------------------------------------------------------------
    async def list_agents(self, request: web.Request) -> web.Response:
        return await self.view.list_agents(request)

    async def get_agent(self, request: web.Request) -> web.Response:
        return await self.view.get_agent(request.match_info["label"])

    # -- lifecycle -----------------------------------------------------------
    async def init(self) -> None:
        self._rest.register("GET", "/fleet", self.list_agents, name="fleet", doc=LIST_DOC,
                            expensive=True)
        self._rest.register("GET", "/fleet/{label}", self.get_agent, name="fleet-agent",
                            doc=GET_DOC)
        await self.cache.init()
        if self._registry is not None and self._collector is None:
            from .metrics import FleetCollector

            self._collector = FleetCollector(self._mapping, self.cache)
            self._registry.register(self._collector)

    async def after_init(self) -> None:
        await self.cache.after_init()
        log.info("fleet view: following %s*/%s", self.config.prefix, AGENT_KEY)

    async def close(self) -> None:
        await self.cache.close()
        await self._mapping.close()
        collector, self._collector = self._collector, None
        if collector is not None and self._registry is not None:
            self._registry.unregister(collector)

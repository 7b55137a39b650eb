"""Fleet metrics, read at scrape time from the view and its cache (nothing kept in sync)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sidecar.health.statuscheck.api import PluginState
from sidecar.idxmap import NamedMappingReader

from .view import FleetSource


class FleetCollector(Collector):
    """Agents by state and how the source follows its store (etcd, or the API server)."""

    def __init__(self, agents: NamedMappingReader[Any], cache: FleetSource) -> None:
        self._agents = agents
        self._cache = cache

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        agents, synced, resyncs, resumes, compactions, events, bad = families = self._families()
        for state in PluginState:
            agents.add_metric([state.name.lower()],
                              len(self._agents.list_names("state", state.name)))
        cache = self._cache
        synced.add_metric([], 1 if cache.synced else 0)
        resyncs.add_metric([], cache.resyncs)
        resumes.add_metric([], cache.resumes)
        compactions.add_metric([], cache.compactions)
        events.add_metric([], cache.events)
        bad.add_metric([], cache.decode_errors)
        return list(families)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, CounterMetricFamily, CounterMetricFamily,
                             CounterMetricFamily]:
        return (
            GaugeMetricFamily("cninfra_fleet_agents",
                              "Agents in the fleet view by published state (init, ok, error).",
                              labels=["state"]),
            GaugeMetricFamily("cninfra_fleet_synced",
                              "1 while the fleet cache follows its store (etcd, the API "
                              "server), else 0."),
            CounterMetricFamily("cninfra_fleet_cache_resyncs",
                                "Full reads of the agents' statuses (start, compaction, "
                                "new store)."),
            CounterMetricFamily("cninfra_fleet_cache_resumes",
                                "Watches resumed where they stopped after a lost connection."),
            CounterMetricFamily("cninfra_fleet_cache_compactions",
                                "Watches that found their history compacted away."),
            CounterMetricFamily("cninfra_fleet_cache_events", "Watch events applied."),
            CounterMetricFamily("cninfra_fleet_cache_rejected_values",
                                "Status values left out because they were not agent statuses."),
        )

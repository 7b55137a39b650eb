"""``cninfra_k8s_*`` metrics, read at scrape time from the plugin's counters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ._api import ApiClient
from .configmap import ConfigMapApplier
from .events import EventRecorder
from .podstatus import PodStatusWriter


class Counted(Protocol):
    """The plugin's parts whose counters are exported (None until the plugin's init)."""

    @property
    def writer(self) -> PodStatusWriter | None: ...

    @property
    def events(self) -> EventRecorder | None: ...

    @property
    def applier(self) -> ConfigMapApplier | None: ...

    @property
    def api(self) -> ApiClient | None: ...


class K8sCollector(Collector):
    def __init__(self, plugin: Counted) -> None:
        self._plugin = plugin

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        patches, failures, events, configmaps, requests = families = self._families()
        plugin = self._plugin
        if plugin.writer is not None:
            patches.add_metric([], plugin.writer.patches)
            failures.add_metric([], plugin.writer.failures)
        if plugin.events is not None:
            for result, count in (("posted", plugin.events.posted),
                                  ("dropped", plugin.events.dropped),
                                  ("failed", plugin.events.failed)):
                events.add_metric([result], count)
        if plugin.applier is not None:
            configmaps.add_metric(["applied"], plugin.applier.applied)
            configmaps.add_metric(["rejected"], plugin.applier.rejected)
        if plugin.api is not None:
            for (verb, code), count in sorted(plugin.api.requests.items()):
                requests.add_metric([verb, str(code)], count)
        return list(families)

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, ...]:
        return (
            CounterMetricFamily("cninfra_k8s_pod_status_patches",
                                "PATCHes of the Pod's status annotations and condition."),
            CounterMetricFamily("cninfra_k8s_pod_status_patch_failures",
                                "PATCHes of the Pod's status that failed (each is retried)."),
            CounterMetricFamily("cninfra_k8s_events",
                                "Events for the Pod: posted, dropped by the rate limit, or "
                                "failed.", labels=["result"]),
            CounterMetricFamily("cninfra_k8s_configmap_reloads",
                                "supervisor.conf texts from the ConfigMap, applied or rejected.",
                                labels=["result"]),
            CounterMetricFamily("cninfra_k8s_api_requests",
                                "Requests to the API server by the plugin itself (not kopf's "
                                "watch), by verb and status code (0: no answer).",
                                labels=["verb", "code"]),
        )

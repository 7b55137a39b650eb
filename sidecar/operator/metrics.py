"""The operator's metrics, read at scrape time from the injector and the reporters."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .uninjected import UninjectedPods
from .webhook import DURATION_BUCKETS, RESULTS, Injector


class OperatorCollector(Collector):
    def __init__(self, injector: Injector, uninjected: UninjectedPods,
                 renewals: Callable[[], int]) -> None:
        self._injector = injector
        self._uninjected = uninjected
        self._renewals = renewals

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        admissions, missing, events, renewals, durations = families = self._families()
        webhooks = sorted({webhook for webhook, _ in self._injector.results})
        for webhook in webhooks:
            for result in RESULTS:
                admissions.add_metric([webhook, result],
                                      self._injector.results[webhook, result])
        for namespace, count in sorted(self._uninjected.count().items()):
            missing.add_metric([namespace], count)
        events.add_metric([], self._uninjected.events_posted)
        renewals.add_metric([], self._renewals())
        counts = self._injector.durations
        cumulative, buckets = 0, []
        for bound, count in zip((*DURATION_BUCKETS, float("inf")), counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        durations.add_metric([], buckets, self._injector.seconds)
        return list(families)

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, HistogramMetricFamily]:
        return (
            CounterMetricFamily("cninfra_operator_admissions",
                                "Pods reviewed by the injection webhook, by webhook and "
                                "result (injected, present, not-asked, opted-out, denied).",
                                labels=["webhook", "result"]),
            GaugeMetricFamily("cninfra_operator_pods_not_injected",
                              "Pods that asked for the sidecar and run without it (the "
                              "webhook was unreachable: failurePolicy Ignore), by namespace; "
                              "kept by the active replica.", labels=["namespace"]),
            CounterMetricFamily("cninfra_operator_not_injected_events",
                                "SidecarNotInjected Events posted."),
            CounterMetricFamily("cninfra_operator_certificate_loads",
                                "Serving certificates loaded by the webhook (the first "
                                "included)."),
            HistogramMetricFamily("cninfra_operator_admission_duration_seconds",
                                  "Time the operator spends on one review (its decision and "
                                  "mutation; not the network, not kopf's dispatch)."),
        )

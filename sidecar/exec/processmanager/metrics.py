"""Process metrics, read at scrape time from the manager (no series to keep in sync)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .process import Process


class ProcessCollector(Collector):
    """``sidecar_process_*`` for every managed process, labelled ``process``."""

    def __init__(self, processes: Callable[[], Iterable[Process]]) -> None:
        self._processes = processes

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        state, up, restarts, uptime, started = families = self._families()
        for process in sorted(self._processes(), key=lambda p: p.name):
            state.add_metric([process.name, process.state.value], 1)
            up.add_metric([process.name], 1 if process.is_alive() else 0)
            restarts.add_metric([process.name], process.restarts)
            uptime.add_metric([process.name], process.uptime)
            if process.start_time is not None:
                started.add_metric([process.name], process.start_time)
        return list(families)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, CounterMetricFamily,
                             GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("sidecar_process_state",
                              "1 for the current state of each managed process (running, "
                              "sleeping, disk sleep, zombie, terminated, ...).",
                              labels=["process", "state"]),
            GaugeMetricFamily("sidecar_process_up", "1 while the process runs.",
                              labels=["process"]),
            CounterMetricFamily("sidecar_process_restarts",
                                "Automatic restarts of the process.", labels=["process"]),
            GaugeMetricFamily("sidecar_process_uptime_seconds",
                              "Seconds since the process last started; 0 when not running.",
                              labels=["process"]),
            GaugeMetricFamily("sidecar_process_start_time_seconds",
                              "When the process last started, Unix seconds.",
                              labels=["process"]),
        )

"""Supervisor metrics, read at scrape time (programs' own series are the process manager's)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .hooks import HookRunner
from .results import ReloadStats


class Supervised(Protocol):
    """What the collector reads of the supervisor at scrape time."""

    def program_rows(self) -> list[dict[str, Any]]: ...

    @property
    def hooks(self) -> HookRunner: ...

    @property
    def reloads(self) -> ReloadStats: ...


class SupervisorCollector(Collector):
    """``cninfra_supervisor_*``: program health, hook runs, reloads."""

    def __init__(self, supervisor: Supervised) -> None:
        self._supervisor = supervisor

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        families = self._families()
        healthy, runs, failures, timeouts, dropped, reloads, last = families
        supervisor = self._supervisor
        for row in supervisor.program_rows():
            healthy.add_metric([row["name"]], 1 if row["healthy"] else 0)
        for name, stats in sorted(supervisor.hooks.stats.items()):
            runs.add_metric([name], stats.runs)
            failures.add_metric([name], stats.failures)
            timeouts.add_metric([name], stats.timeouts)
        dropped.add_metric([], supervisor.hooks.dropped)
        reloads.add_metric(["applied"], supervisor.reloads.applied)
        reloads.add_metric(["rejected"], supervisor.reloads.rejected)
        if supervisor.reloads.last_applied is not None:
            last.add_metric([], supervisor.reloads.last_applied)
        return list(families)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, CounterMetricFamily, CounterMetricFamily,
                             GaugeMetricFamily]:
        return (
            GaugeMetricFamily("cninfra_supervisor_program_healthy",
                              "1 when the program is healthy (not crash-looping, not given up, "
                              "could be started).", labels=["program"]),
            CounterMetricFamily("cninfra_supervisor_hook_runs", "Hook runs started.",
                                labels=["hook"]),
            CounterMetricFamily("cninfra_supervisor_hook_failures",
                                "Hook runs that failed: could not start, exited non-zero or "
                                "timed out.", labels=["hook"]),
            CounterMetricFamily("cninfra_supervisor_hook_timeouts",
                                "Hook runs stopped at their timeout.", labels=["hook"]),
            CounterMetricFamily("cninfra_supervisor_hook_events_dropped",
                                "Program events whose hooks never ran: the program's hook "
                                "backlog was full."),
            CounterMetricFamily("cninfra_supervisor_reloads",
                                "Configs applied and rejected after start-up.",
                                labels=["result"]),
            GaugeMetricFamily("cninfra_supervisor_config_applied_timestamp_seconds",
                              "When the config in force was applied, Unix seconds."),
        )

"""``cninfra_log_level_*``: level changes, and the levels changed at run time that are
still in force (an alert can tell a debug level left on), read at scrape time."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sidecar.logging.levels import level_name

from .api import ROOT
from .manager import LevelManager


class LevelCollector(Collector):
    """Listens to the manager's changes (register :meth:`changed` with it)."""

    def __init__(self, levels: LevelManager) -> None:
        self._levels = levels
        self._changes: dict[tuple[str, str], int] = {}
        #: Loggers changed at run time -> when they last changed (Unix seconds).
        self._since: dict[str, float] = {}

    def changed(self, name: str, _level: int, cause: str) -> None:
        key = (name, cause)
        self._changes[key] = self._changes.get(key, 0) + 1
        self._since[name] = time.time()

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        changes, since, expiry = families = self._families()
        for (name, cause), count in sorted(self._changes.items()):
            changes.add_metric([name, cause], count)
        for name, when in sorted(self._since.items()):
            own = (logging.getLogger() if name == ROOT else logging.getLogger(name)).level
            if own == self._levels.configured_level(name):
                continue  # back at its logs.conf level (reset, or a ttl that ran out)
            level = level_name(own) if own else "inherited"
            since.add_metric([name, level], when)
            expires = self._levels.get(name).expires
            if expires is not None:
                expiry.add_metric([name, level], expires)
        return list(families)

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            CounterMetricFamily("cninfra_log_level_changes",
                                "Log level changes by logger and cause (set over REST, reset "
                                "to the configured level, expired ttl).",
                                labels=["logger", "cause"]),
            GaugeMetricFamily("cninfra_log_level_override_timestamp_seconds",
                              "Loggers whose level was changed at run time and differs from "
                              "logs.conf: when it was changed, Unix seconds, by logger and "
                              "the level in force.", labels=["logger", "level"]),
            GaugeMetricFamily("cninfra_log_level_override_expiry_timestamp_seconds",
                              "When a level set with a ttl reverts, Unix seconds (none for a "
                              "level set without one).", labels=["logger", "level"]),
        )

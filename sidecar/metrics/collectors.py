"""Collectors that read state at scrape time: nothing to keep in sync, no stale series."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from sidecar.health.statuscheck.api import PluginState, StatusReader

from .api import PublishCounts


class StatusCollector(Collector):
    """The agent's and every plugin's state, straight from the status check."""

    def __init__(self, statuscheck: StatusReader) -> None:
        self._status = statuscheck

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        status = self._status.agent_status()
        agent, ready, live, started, plugins, changed, group_state, group_up, build = \
            self._families()
        _states(agent, [], status.state)
        ready.add_metric([], 1 if status.ready else 0)
        live.add_metric([], 1 if status.live else 0)
        started.add_metric([], status.start_time)
        for name, plugin in sorted(status.plugins.items()):
            _states(plugins, [name], plugin.state)
            changed.add_metric([name], plugin.last_change)
        for name, group in status.groups.items():
            _states(group_state, [name], group.state)
            group_up.add_metric([name], 1 if group.up else 0)
        build.add_metric([], {"version": status.build_version, "commit": status.commit_hash,
                              "build_date": status.build_date})
        return [agent, ready, live, started, plugins, changed, group_state, group_up, build]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily,
                             GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily,
                             GaugeMetricFamily, GaugeMetricFamily, InfoMetricFamily]:
        return (
            GaugeMetricFamily("cninfra_agent_state",
                              "The agent's state (the logical AND of the plugins): 1 on the "
                              "series of the current state (init, ok, error), 0 on the others.",
                              labels=["state"]),
            GaugeMetricFamily("cninfra_agent_ready", "1 when /readiness answers 200."),
            GaugeMetricFamily("cninfra_agent_live", "1 when /liveness answers 200."),
            GaugeMetricFamily("cninfra_agent_start_time_seconds",
                              "When the agent started, Unix seconds."),
            GaugeMetricFamily("cninfra_plugin_state",
                              "Each plugin's state: 1 on the series of its current state "
                              "(init, ok, error), 0 on the others.", labels=["plugin", "state"]),
            GaugeMetricFamily("cninfra_plugin_last_change_timestamp_seconds",
                              "When the plugin's state last changed, Unix seconds.",
                              labels=["plugin"]),
            GaugeMetricFamily("cninfra_health_group_state",
                              "Each health group's state (the AND of the plugins it counts): 1 "
                              "on the series of its current state (init, ok, error), 0 on the "
                              "others.", labels=["group", "state"]),
            GaugeMetricFamily("cninfra_health_group_up",
                              "1 when the group's probe (/liveness, /readiness, "
                              "/health/<group>) answers 200.", labels=["group"]),
            InfoMetricFamily("cninfra_build", "Version, commit and build date of the sidecar."),
        )


def state_label(state: PluginState) -> str:
    """The ``state`` label's value: ``init``, ``ok`` or ``error``."""
    return state.name.lower()


def _states(family: GaugeMetricFamily, labels: list[str], current: PluginState) -> None:
    """One series per state, 1 on the current one: ``sum by (state)`` counts, and an alert
    on ``{state="error"} == 1`` needs no knowledge of the numbers."""
    for state in PluginState:
        family.add_metric([*labels, state_label(state)], 1 if state is current else 0)


class TransitionCounter:
    """A status listener counting entries into each state: scrapes miss short flaps, this not."""

    def __init__(self, statuscheck: StatusReader) -> None:
        self._status = statuscheck
        self._seen: dict[str, PluginState] = {}
        self.counts: dict[tuple[str, PluginState], int] = {}

    def __call__(self) -> None:
        plugins = self._status.agent_status().plugins
        for name, plugin in plugins.items():
            before = self._seen.get(name)
            if before is not plugin.state:
                self._seen[name] = plugin.state
                if before is not None or plugin.state is not PluginState.INIT:
                    key = (name, plugin.state)
                    self.counts[key] = self.counts.get(key, 0) + 1
        for name in self._seen.keys() - plugins.keys():
            del self._seen[name]


class TransitionCollector(Collector):
    def __init__(self, counter: TransitionCounter) -> None:
        self._counter = counter

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for (name, state), count in sorted(self._counter.counts.items()):
            family.add_metric([name, state_label(state)], count)
        yield family

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily("cninfra_plugin_state_changes",
                                   "Times a plugin entered a state (init, ok, error).",
                                   labels=["plugin", "state"])


class PublisherCollector(Collector):
    def __init__(self, publisher: PublishCounts) -> None:
        self._publisher = publisher

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        commits, errors = self._families()
        commits.add_metric([], self._publisher.commits)
        errors.add_metric([], self._publisher.errors)
        return [commits, errors]

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily]:
        return (
            CounterMetricFamily("cninfra_status_publish_commits",
                                "Status transactions written to etcd."),
            CounterMetricFamily("cninfra_status_publish_errors",
                                "Status writes to etcd that failed (etcd unreachable or no "
                                "session); each is retried."),
        )

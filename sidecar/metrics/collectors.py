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
        agent.add_metric([], int(status.state))
        ready.add_metric([], 1 if status.ready else 0)
        live.add_metric([], 1 if status.live else 0)
        started.add_metric([], status.start_time)
        for name, plugin in sorted(status.plugins.items()):
            plugins.add_metric([name], int(plugin.state))
            changed.add_metric([name], plugin.last_change)
        for name, group in status.groups.items():
            group_state.add_metric([name], int(group.state))
            group_up.add_metric([name], 1 if group.up else 0)
        build.add_metric([], {"version": status.build_version, "commit": status.commit_hash,
                              "build_date": status.build_date})
        return [agent, ready, live, started, plugins, changed, group_state, group_up, build]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily,
                             GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily,
                             GaugeMetricFamily, GaugeMetricFamily, InfoMetricFamily]:
        return (
            GaugeMetricFamily("sidecar_agent_state",
                              "Agent state: 0 INIT, 1 OK, 2 ERROR (the logical AND of the "
                              "plugins)."),
            GaugeMetricFamily("sidecar_agent_ready", "1 when /readiness answers 200."),
            GaugeMetricFamily("sidecar_agent_live", "1 when /liveness answers 200."),
            GaugeMetricFamily("sidecar_agent_start_time_seconds",
                              "When the agent started, Unix seconds."),
            GaugeMetricFamily("sidecar_plugin_state",
                              "Plugin state: 0 INIT, 1 OK, 2 ERROR.", labels=["plugin"]),
            GaugeMetricFamily("sidecar_plugin_last_change_timestamp_seconds",
                              "When the plugin's state last changed, Unix seconds.",
                              labels=["plugin"]),
            GaugeMetricFamily("sidecar_health_group_state",
                              "Health group state: 0 INIT, 1 OK, 2 ERROR (the AND of the "
                              "plugins it counts).", labels=["group"]),
            GaugeMetricFamily("sidecar_health_group_up",
                              "1 when the group's probe (/liveness, /readiness, "
                              "/health/<group>) answers 200.", labels=["group"]),
            InfoMetricFamily("sidecar_build", "Version, commit and build date of the sidecar."),
        )


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
            family.add_metric([name, state.name], count)
        yield family

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily("sidecar_plugin_state_changes",
                                   "Times a plugin entered a state (INIT, OK, ERROR).",
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
            CounterMetricFamily("sidecar_status_publish_commits",
                                "Status transactions written to etcd."),
            CounterMetricFamily("sidecar_status_publish_errors",
                                "Status writes to etcd that failed (etcd unreachable or no "
                                "session); each is retried."),
        )

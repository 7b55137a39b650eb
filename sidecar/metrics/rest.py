"""What the REST server refused or shed, and its connections: read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sidecar.rest import RestStats


class RestCollector(Collector):
    """The REST server's counters (:class:`sidecar.rest.RestStats`)."""

    def __init__(self, stats: RestStats) -> None:
        self._stats = stats

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        (refused, busy, cached, too_large, open_, accepted, evicted, closed, accept_errors,
         probe_requests, stalls) = self._families()
        for reason, count in sorted(dict(stats.admin_refused).items()):
            refused.add_metric([reason], count)
        for route, count in sorted(dict(stats.busy).items()):
            busy.add_metric([route], count)
        for route, count in sorted(dict(stats.cached).items()):
            cached.add_metric([route], count)
        too_large.add_metric([], stats.too_large)
        listeners = [("rest", stats.listener)]
        if stats.probes is not None:
            listeners.append(("probe", stats.probes.listener))
            # A copy first: the probe listener's thread adds keys while we read.
            for (path, status), count in sorted(dict(stats.probes.requests).items()):
                probe_requests.add_metric([path, str(status)], count)
            stalls.add_metric([], stats.probes.stalls)
        for name, listener in listeners:
            open_.add_metric([name], listener.open)
            accepted.add_metric([name], listener.accepted)
            evicted.add_metric([name], listener.evicted)
            closed.add_metric([name], listener.refused)
            accept_errors.add_metric([name], listener.accept_errors)
        yield from (refused, busy, cached, too_large, open_, accepted, evicted, closed,
                    accept_errors)
        if stats.probes is not None:
            yield probe_requests
            yield stalls

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, GaugeMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, CounterMetricFamily, CounterMetricFamily,
                             CounterMetricFamily, CounterMetricFamily]:
        listener = ["listener"]
        return (
            CounterMetricFamily("cninfra_http_admin_refused",
                                "Admin requests refused, by reason (needs-token 401, "
                                "bad-token 403, malformed 400).", labels=["reason"]),
            CounterMetricFamily("cninfra_http_busy",
                                "Requests to expensive routes answered 503 (too many at "
                                "once), by route.", labels=["route"]),
            CounterMetricFamily("cninfra_http_cached_renders",
                                "Requests to expensive routes answered from a cached render, "
                                "by route.", labels=["route"]),
            CounterMetricFamily("cninfra_http_body_too_large",
                                "Requests with a body over max-body-size (413)."),
            GaugeMetricFamily("cninfra_http_connections",
                              "Connections held, by listener (rest, probe).", labels=listener),
            CounterMetricFamily("cninfra_http_connections_accepted",
                                "Connections accepted, by listener.", labels=listener),
            CounterMetricFamily("cninfra_http_connections_evicted",
                                "Idle connections closed to make room at the connection limit, "
                                "by listener.", labels=listener),
            CounterMetricFamily("cninfra_http_connections_refused",
                                "New connections closed at once at the limit (silent ones, or "
                                "every held one busy), by listener.", labels=listener),
            CounterMetricFamily("cninfra_http_accept_errors",
                                "accept() failures (out of descriptors), by listener.",
                                labels=listener),
            CounterMetricFamily("cninfra_probe_listener_requests",
                                "Requests the probe listener answered, by path and status.",
                                labels=["path", "status"]),
            CounterMetricFamily("cninfra_probe_listener_stalls",
                                "Times the probe listener found the event loop stalled past "
                                "probe-stall-limit (the probes answered 503)."),
        )

"""A REST middleware counting requests by route, method and status, and timing them.

It sits on every request, the kubelet's probes included, so it keeps plain
integers (the event loop is its only writer) and turns them into metric
families only when Prometheus scrapes: a request costs two clock reads, a few
dictionary operations and a bisect, no locks.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from sidecar.rest.api import Handler, Middleware

#: Seconds; a sidecar's handlers answer from memory, so the interesting range is small.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Requests that matched no route share one label value, so scanners cannot add series.
UNMATCHED = "unmatched"


def route_label(request: web.Request) -> str:
    """The route's path template (``/log/{logger}/{level}``), never the raw path."""
    resource = request.match_info.route.resource
    if resource is None:
        return UNMATCHED
    return resource.canonical


class HTTPStats(Collector):
    """Request counts and duration histograms, exported at scrape time."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self.requests: dict[tuple[str, str, int], int] = {}
        # route -> [count per bucket (+Inf last)..., sum]
        self.durations: dict[str, list[float]] = {}

    def record(self, request: web.Request, status: int, seconds: float) -> None:
        route = route_label(request)
        method = request.method if request.method in _METHODS else "other"
        key = (route, method, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        histogram = self.durations.get(route)
        if histogram is None:
            histogram = self.durations[route] = [0.0] * (len(self.buckets) + 2)
        histogram[bisect_left(self.buckets, seconds)] += 1
        histogram[-1] += seconds

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        requests, durations = self._families()
        for (route, method, status), count in sorted(self.requests.items()):
            requests.add_metric([route, method, str(status)], count)
        bounds = [repr(float(b)) for b in self.buckets] + ["+Inf"]
        for route, histogram in sorted(self.durations.items()):
            cumulative, buckets = 0.0, []
            for bound, in_bucket in zip(bounds, histogram[:-1], strict=True):
                cumulative += in_bucket
                buckets.append((bound, cumulative))
            durations.add_metric([route], buckets, histogram[-1])
        yield requests
        yield durations

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, HistogramMetricFamily]:
        return (
            CounterMetricFamily("cninfra_http_requests",
                                "HTTP requests by route, method and status.",
                                labels=["route", "method", "status"]),
            HistogramMetricFamily("cninfra_http_request_duration_seconds",
                                  "Time to answer HTTP requests, by route.", labels=["route"]),
        )


def http_metrics(registry: CollectorRegistry) -> Middleware:
    """The middleware; its figures are registered in ``registry``."""
    stats = HTTPStats()
    registry.register(stats)
    record = stats.record
    clock = time.perf_counter

    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        begin = clock()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            record(request, exc.status, clock() - begin)
            raise
        except Exception:
            record(request, 500, clock() - begin)
            raise
        # A cancelled request (the client went away) is not counted: it got no answer.
        record(request, response.status, clock() - begin)
        return response

    return middleware

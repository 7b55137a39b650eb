"""A REST middleware counting requests by route, method and status, and timing them.

It sits on every request, the kubelet's probes included, so the label
children are looked up once and kept: a request costs two dictionary lookups,
a counter increment and a histogram observation.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

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


def http_metrics(registry: CollectorRegistry) -> Middleware:
    requests = Counter("sidecar_http_requests", "HTTP requests by route, method and status.",
                       ["route", "method", "status"], registry=registry)
    durations = Histogram("sidecar_http_request_duration_seconds",
                          "Time to answer HTTP requests, by route.", ["route"],
                          buckets=BUCKETS, registry=registry)
    counters: dict[tuple[str, str, int], Counter] = {}
    histograms: dict[str, Histogram] = {}

    def record(request: web.Request, status: int, elapsed: float) -> None:
        route = route_label(request)
        method = request.method if request.method in _METHODS else "other"
        key = (route, method, status)
        counter = counters.get(key)
        if counter is None:
            counter = counters[key] = requests.labels(route, method, str(status))
        counter.inc()
        histogram = histograms.get(route)
        if histogram is None:
            histogram = histograms[route] = durations.labels(route)
        histogram.observe(elapsed)

    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        begin = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            record(request, exc.status, time.perf_counter() - begin)
            raise
        except Exception:
            record(request, 500, time.perf_counter() - begin)
            raise
        # A cancelled request (the client went away) is not counted: it got no answer.
        record(request, response.status, time.perf_counter() - begin)
        return response

    return middleware

"""The metrics plugin: one registry for the sidecar, served at ``GET /metrics``.

Plugins that have metrics of their own get :attr:`MetricsPlugin.registry` in
their constructor (from the builder) and create their counters in it.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from collections.abc import Iterable, Iterator

from aiohttp import hdrs, web
from aiohttp.web_response import ContentCoding
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, disable_created_metrics
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from sidecar.agent.api import deps_among
from sidecar.health.statuscheck.api import PluginState, StatusReader
from sidecar.rest import RestStats
from sidecar.rest.api import Handler, HTTPHandlers, Parameter, Response, RouteDoc

from .api import PublishCounts
from .collectors import (
    PublisherCollector,
    StatusCollector,
    TransitionCollector,
    TransitionCounter,
)
from .config import MetricsConfig
from .http import http_metrics

log = logging.getLogger("sidecar.metrics")

METRICS_DOC = RouteDoc(
    "Prometheus metrics",
    {200: Response.text("the text exposition format, or OpenMetrics when the Accept header "
                        "asks for it; gzip when Accept-Encoding allows it, else deflate",
                        "text/plain; version=0.0.4")},
    parameters=(Parameter("name[]", "only these metric families (repeatable)",
                          location="query"),),
    tags=("metrics",))

#: Seconds; probes are bounded by ``probe-timeout`` (3 s by default).
PROBE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class MetricsPlugin:
    name = "metrics"

    def __init__(
        self,
        rest: HTTPHandlers,
        statuscheck: StatusReader | None = None,
        config: MetricsConfig | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.config = config or MetricsConfig()
        # prometheus_client's own Counters and Histograms (ours, and those of user code in
        # the global registry) would add a ``_created`` series each: timestamps nobody
        # queries, that double the series of every counter. Process-wide, and idempotent.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.deps = deps_among(rest, statuscheck)
        self._rest = rest
        self._statuscheck = statuscheck
        #: The sidecar's registry: give it to plugins that export metrics.
        self.registry = registry or CollectorRegistry()
        self._transitions: TransitionCounter | None = None
        self._probe_durations: Histogram | None = None
        if statuscheck is not None:
            self.registry.register(StatusCollector(statuscheck))
            self._transitions = TransitionCounter(statuscheck)
            self.registry.register(TransitionCollector(self._transitions))
            self._probe_durations = Histogram(
                "cninfra_probe_duration_seconds",
                "Time each pull probe took (a timed-out probe counts its timeout).",
                ["plugin"], buckets=PROBE_BUCKETS, registry=self.registry)
        sources: list[Collector] = [self.registry]
        if self.config.default_registry:
            sources.append(REGISTRY)
        self.exposed = _Union(sources)
        self._registered = False

    def watch_publisher(self, publisher: PublishCounts) -> None:
        """Export the status publisher's commit and error counts."""
        self.registry.register(PublisherCollector(publisher))

    def watch_rest(self, stats: RestStats) -> None:
        """Export what the REST server refused or shed, and its connections."""
        from .rest import RestCollector

        self.registry.register(RestCollector(stats))

    def _observe_probe(self, name: str, seconds: float, state: PluginState) -> None:
        if self._probe_durations is not None:
            self._probe_durations.labels(name).observe(seconds)

    async def init(self) -> None:
        if self._registered:
            return
        self._registered = True
        # Expensive: the REST server answers a flood from a render kept for render-cache.
        self._rest.register("GET", self.config.path, metrics_handler(self.exposed),
                            name="metrics", doc=METRICS_DOC, expensive=True)
        if self.config.http_requests:
            self._rest.add_middleware(http_metrics(self.registry))
        if self._statuscheck is not None and self._transitions is not None:
            self._statuscheck.add_listener(self._transitions)
            self._transitions()
            self._statuscheck.add_probe_observer(self._observe_probe)

    async def after_init(self) -> None:
        pass

    async def close(self) -> None:
        if self._statuscheck is not None and self._transitions is not None:
            self._statuscheck.remove_listener(self._transitions)


def metrics_handler(collector: _Union) -> Handler:
    """The exposition as the client asks (text, or OpenMetrics by Accept; ``name[]``),
    compressed as it prefers, gzip first, into the body's bytes: so that the REST server
    can keep the whole render (render-cache) instead of compressing every answer again.

    Left to itself aiohttp picks the first of deflate and gzip that the header
    names, whatever their order or q-values: ``curl --compressed`` got deflate.
    """

    async def handler(request: web.Request) -> web.StreamResponse:
        encoder, content_type = choose_encoder(",".join(request.headers.getall(hdrs.ACCEPT,
                                                                               [])))
        names = request.query.getall("name[]", [])
        body = encoder(collector.restricted_registry(names) if names else collector)
        headers = {hdrs.CONTENT_TYPE: content_type}
        coding = preferred_coding(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        if coding is ContentCoding.gzip:
            body, headers[hdrs.CONTENT_ENCODING] = gzip.compress(body), "gzip"
        elif coding is ContentCoding.deflate:
            body, headers[hdrs.CONTENT_ENCODING] = zlib.compress(body), "deflate"
        return web.Response(body=body, headers=headers)

    return handler


def preferred_coding(accept_encoding: str) -> ContentCoding | None:
    """gzip or deflate, whichever ``Accept-Encoding`` ranks higher (gzip on a tie);
    None when it accepts neither (q=0 refuses a coding; ``*`` stands for the unnamed)."""
    weights: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if name:
            weights[name.lower()] = weight
    wildcard = weights.get("*", 0.0)
    gzip, deflate = weights.get("gzip", wildcard), weights.get("deflate", wildcard)
    if max(gzip, deflate) <= 0:
        return None
    return ContentCoding.gzip if gzip >= deflate else ContentCoding.deflate


class _Union(Collector):
    """Several registries exposed as one (the sidecar's and prometheus_client's global one)."""

    def __init__(self, sources: Iterable[Collector]) -> None:
        self._sources = tuple(sources)

    def collect(self) -> Iterator[Metric]:
        for source in self._sources:
            yield from source.collect()

    def restricted_registry(self, names: Iterable[str]) -> Collector:
        """For ``GET /metrics?name[]=...``: only the samples named."""
        return _Only(self, frozenset(names))


class _Only(Collector):
    def __init__(self, source: Collector, names: frozenset[str]) -> None:
        self._source = source
        self._names = names

    def collect(self) -> Iterator[Metric]:
        for metric in self._source.collect():
            samples = [s for s in metric.samples if s.name in self._names]
            if samples:
                copy = Metric(metric.name, metric.documentation, metric.type, metric.unit)
                copy.samples = samples
                yield copy

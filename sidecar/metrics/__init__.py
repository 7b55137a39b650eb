"""metrics: the sidecar's Prometheus registry and ``GET /metrics``.

Exported: agent and per-plugin state gauges, state transitions, pull-probe
durations, HTTP requests by route and status, log level changes, and status
publishing to etcd. Later plugins add their metrics to
:attr:`MetricsPlugin.registry`.
"""

from .api import PublishCounts
from .collectors import PublisherCollector, StatusCollector
from .config import MetricsConfig
from .http import http_metrics, route_label
from .plugin import MetricsPlugin

__all__ = [
    "MetricsConfig",
    "MetricsPlugin",
    "PublishCounts",
    "PublisherCollector",
    "StatusCollector",
    "http_metrics",
    "route_label",
]

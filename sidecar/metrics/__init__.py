"""metrics: the sidecar's Prometheus registry and ``GET /metrics``.

Exported: agent and per-plugin state gauges, state transitions, pull-probe
durations, HTTP requests by route and status, log level changes, and status
publishing to etcd. Later plugins add their metrics to
:attr:`MetricsPlugin.registry`.
"""

from .collectors import PublishCounts, PublisherCollector, StatusCollector
from .config import MetricsConfig
from .http import http_metrics, route_label
from .plugin import MetricsPlugin, ObservableStatus

__all__ = [
    "MetricsConfig",
    "MetricsPlugin",
    "ObservableStatus",
    "PublishCounts",
    "PublisherCollector",
    "StatusCollector",
    "http_metrics",
    "route_label",
]

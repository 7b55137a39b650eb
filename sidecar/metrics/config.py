"""``metrics.conf``: the Prometheus endpoint. No file means the defaults (served)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricsConfig:
    #: Serve metrics at all.
    enabled: bool = True
    #: Where Prometheus scrapes; open to any peer, like the probes.
    path: str = "/metrics"
    #: Also serve prometheus_client's global registry: process_*, python_gc_*,
    #: python_info, and whatever user code registers there the usual way.
    default_registry: bool = True
    #: Count HTTP requests by route, method and status, and time them.
    http_requests: bool = True

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"path must start with '/', got {self.path!r}")

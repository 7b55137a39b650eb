"""probe: the ``/liveness`` and ``/readiness`` HTTP endpoints."""

from .plugin import ProbePlugin

__all__ = ["ProbePlugin"]

"""measure: cn-infra's tracer, for timing events across time (plugin start-up is traced).

Standard library only; the ``GET /debug/startup-trace`` route is served by
:class:`sidecar.logging.measure.plugin.StartupTracePlugin`.
"""

from .tracer import Trace, TraceEntry, Tracer

__all__ = ["Trace", "TraceEntry", "Tracer"]

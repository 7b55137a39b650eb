"""REST plugin: the aiohttp server, route registration, admin access rules, the probe listener."""

from .access import AdminAccess, Verdict
from .api import (
    DEADLINE,
    ERROR_SCHEMA,
    Handler,
    HTTPHandlers,
    Middleware,
    Parameter,
    ProbeAnswer,
    ProbeHandlers,
    ProbeSource,
    Response,
    RouteDoc,
    error_response,
    time_left,
)
from .config import (
    DEFAULT_PORT,
    DEFAULT_PROBE_PORT,
    HTTPConfig,
    connection_limit,
    parse_port,
    split_endpoint,
)
from .openapi import RouteInfo
from .plugin import OPENAPI_PATH, RestPlugin, RestStats

__all__ = [
    "DEADLINE",
    "DEFAULT_PORT",
    "DEFAULT_PROBE_PORT",
    "ERROR_SCHEMA",
    "OPENAPI_PATH",
    "AdminAccess",
    "HTTPConfig",
    "HTTPHandlers",
    "Handler",
    "Middleware",
    "Parameter",
    "ProbeAnswer",
    "ProbeHandlers",
    "ProbeSource",
    "Response",
    "RestPlugin",
    "RestStats",
    "RouteDoc",
    "RouteInfo",
    "Verdict",
    "connection_limit",
    "error_response",
    "parse_port",
    "split_endpoint",
    "time_left",
]

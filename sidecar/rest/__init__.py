"""REST plugin: the aiohttp server, route registration and admin access rules."""

from .access import AdminAccess, Verdict
from .api import (
    ERROR_SCHEMA,
    Handler,
    HTTPHandlers,
    Middleware,
    Parameter,
    Response,
    RouteDoc,
    error_response,
)
from .config import DEFAULT_PORT, HTTPConfig, parse_port, split_endpoint
from .openapi import RouteInfo
from .plugin import OPENAPI_PATH, RestPlugin

__all__ = [
    "DEFAULT_PORT",
    "ERROR_SCHEMA",
    "OPENAPI_PATH",
    "AdminAccess",
    "HTTPConfig",
    "HTTPHandlers",
    "Handler",
    "Middleware",
    "Parameter",
    "Response",
    "RestPlugin",
    "RouteDoc",
    "RouteInfo",
    "Verdict",
    "error_response",
    "parse_port",
    "split_endpoint",
]

"""REST plugin: the aiohttp server, route registration and admin access rules."""

from .access import AdminAccess, Verdict
from .api import Handler, HTTPHandlers, Middleware
from .config import DEFAULT_PORT, HTTPConfig, parse_port, split_endpoint
from .openapi import ERROR_SCHEMA, Parameter, Response, RouteDoc, RouteInfo
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
    "parse_port",
    "split_endpoint",
]

"""REST plugin: the aiohttp server, route registration and admin access rules."""

from .access import AdminAccess, Verdict
from .api import Handler, HTTPHandlers, Middleware
from .config import DEFAULT_PORT, HTTPConfig, parse_port, split_endpoint
from .plugin import RestPlugin

__all__ = [
    "DEFAULT_PORT",
    "AdminAccess",
    "HTTPConfig",
    "HTTPHandlers",
    "Handler",
    "Middleware",
    "RestPlugin",
    "Verdict",
    "parse_port",
    "split_endpoint",
]

"""Logging: output set-up, level names, the log manager (``logmanager``), the tracer (``measure``).

This package and its ``levels`` module use the standard library
only, so the command line stays fast; ``logmanager`` needs aiohttp.
"""

from .context import current_plugin
from .levels import LEVELS, PANIC, TRACE, InvalidLevelError, level_name, parse_level
from .setup import JsonFormatter, set_service_label, setup_logging

__all__ = [
    "LEVELS",
    "PANIC",
    "TRACE",
    "InvalidLevelError",
    "JsonFormatter",
    "current_plugin",
    "level_name",
    "parse_level",
    "set_service_label",
    "setup_logging",
]

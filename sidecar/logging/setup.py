"""Process-wide log output: readable text on stderr by default, JSON lines on request.

JSON lines are for cluster log collectors (Fluent Bit, Vector, Loki, ...): one
object per line with ``time`` (RFC 3339, UTC), ``level`` (cn-infra's names),
``logger``, ``message``, ``plugin`` (when a plugin's code logged it),
``service_label``, ``exception`` (a traceback, if any) and any ``extra=``
fields the caller passed.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from .context import current_plugin
from .levels import level_name, parse_level

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
FORMATS = ("text", "json")

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName", "plugin",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, service_label: str | None = None) -> None:
        super().__init__()
        self.service_label = service_label

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=UTC)
        doc: dict[str, Any] = {
            "time": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level_name(record.levelno),
            "logger": record.name,
            "message": record.getMessage(),
        }
        plugin = getattr(record, "plugin", None) or current_plugin.get()
        if plugin:
            doc["plugin"] = plugin
        if self.service_label:
            doc["service_label"] = self.service_label
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key not in doc:
                doc[key] = value
        return json.dumps(doc, default=str, ensure_ascii=False, separators=(",", ":"))


def setup_logging(level: int | str = logging.INFO, fmt: str = "text",
                  service_label: str | None = None) -> logging.Handler:
    """Send every logger's records to stderr as ``fmt``; called once by ``sidecar run``.

    ``level`` is a number or a cn-infra level name; it becomes the root level.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of: {', '.join(FORMATS)}")
    numeric = parse_level(level, "log level") if isinstance(level, str) else level
    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(service_label) if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler


def set_service_label(label: str) -> None:
    """Stamp ``label`` on the JSON lines of the root logger's handlers (known after config)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.service_label = label

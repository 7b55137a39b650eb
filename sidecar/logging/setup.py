"""Process-wide log output: readable text on stderr by default, JSON lines on request.

JSON lines are for cluster log collectors (Fluent Bit, Vector, Loki, ...): one
object per line with ``time`` (RFC 3339, UTC), ``level`` (cn-infra's names),
``logger``, ``message``, ``plugin`` (when a plugin's code logged it),
``service_label``, ``exception`` (a traceback, if any) and any ``extra=``
fields the caller passed. In JSON mode nothing else reaches stdout or stderr
as raw text: supervised programs' output becomes objects too
(:mod:`.output`), and Python's warnings and uncaught exceptions become log
records.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType
from typing import Any

from . import output
from .audit import pin_level
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
        doc: dict[str, Any] = {
            "time": output.rfc3339(record.created),
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
        return output.json_line(doc)


def setup_logging(level: int | str = logging.INFO, fmt: str = "text",
                  service_label: str | None = None) -> logging.Handler:
    """Send every logger's records to stderr as ``fmt``; called once by ``sidecar run``.

    ``level`` is a number or a cn-infra level name; it becomes the root level (the
    audit logger stays at info). Supervised programs' output follows ``fmt`` too.
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
    pin_level()
    output.use_format(fmt, service_label)
    if fmt == "json":
        _route_stray_output()
    return handler


def _route_stray_output() -> None:
    """Warnings and uncaught exceptions as log records, not raw text on stderr."""
    logging.captureWarnings(True)
    crash = logging.getLogger("sidecar.crash")

    def on_exception(kind: type[BaseException], exc: BaseException,
                     tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, exc, tb)
            return
        crash.critical("uncaught %s: %s", kind.__name__, exc, exc_info=(kind, exc, tb))

    def on_thread_exception(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "?"
        crash.critical("uncaught %s in thread %s: %s", args.exc_type.__name__, name,
                       args.exc_value,
                       exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = on_exception
    threading.excepthook = on_thread_exception


def set_service_label(label: str) -> None:
    """Stamp ``label`` on the JSON lines of the root logger's handlers and of programs'
    output (known after config)."""
    output.set_service_label(label)
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, JsonFormatter):
            handler.formatter.service_label = label

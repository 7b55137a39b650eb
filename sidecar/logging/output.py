"""A supervised program's output as lines of the sidecar's own output (its stdout).

In JSON mode (``--log-format json``) each line a program writes becomes one JSON
object, in the shape of the sidecar's log records plus ``event``
(``program.output``), ``program`` and ``stream``; in text mode it keeps the
readable ``[name] line`` form. Either way a program cannot flood the sidecar's
output or its event loop:

- a line longer than :attr:`OutputLimits.max_line` bytes is cut there, marked with
  its full length (``truncated_from`` in JSON);
- each program has a token bucket (:attr:`~OutputLimits.rate` lines a second,
  bursts of :attr:`~OutputLimits.burst`); lines over it are dropped and counted,
  and one summary per :attr:`~OutputLimits.summary_interval` says how many
  (``program.output.dropped``);
- bytes that are not UTF-8 are replaced (U+FFFD), control characters escaped:
  any output gives valid JSON.

The process-wide format is set by :func:`sidecar.logging.setup_logging`; a
library user who never calls it gets the text form.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from sidecar.tokenbucket import TokenBucket

from .context import current_plugin

#: The ``logger`` field of program output and of its drop summaries.
PROGRAM_LOGGER = "sidecar.program"
#: The ``event`` field of a line a program wrote.
OUTPUT_EVENT = "program.output"
#: The ``event`` field of the summary of the lines dropped by the rate limit.
DROPPED_EVENT = "program.output.dropped"


@dataclass(frozen=True)
class OutputLimits:
    """How much of one program's output reaches the sidecar's output."""

    #: Lines per second, over both streams, in the long run.
    rate: float = 1000.0
    #: Lines that may come at once after a quiet spell (the bucket's size).
    burst: int = 2000
    #: Bytes of a line kept; the rest is cut. Under the 16 KiB at which container
    #: runtimes split a log line, with room for the other fields.
    max_line: int = 8192
    #: Seconds between two summaries of dropped lines.
    summary_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.max_line < 1 or self.summary_interval <= 0:
            raise ValueError("output limits: rate, burst, max_line and summary_interval "
                             "must be positive")


DEFAULT_LIMITS = OutputLimits()


@dataclass
class _Style:
    json: bool = False
    service_label: str | None = None


_style = _Style()


def use_format(fmt: str, service_label: str | None = None) -> None:
    """Write program output as ``fmt`` (``text`` or ``json``) from now on."""
    _style.json = fmt == "json"
    _style.service_label = service_label


def set_service_label(label: str | None) -> None:
    _style.service_label = label


def json_mode() -> bool:
    """Whether the sidecar's output is JSON lines."""
    return _style.json


def rfc3339(created: float) -> str:
    """``created`` (Unix seconds) as the ``time`` field: RFC 3339, UTC, milliseconds."""
    stamp = datetime.fromtimestamp(created, tz=UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ProgramOutput:
    """One program's output lines, both streams, to the sidecar's stdout (or ``stream``).

    A process manager writer (it has ``write_output``): give the same instance as
    stdout and stderr, and to every run of the program, so that one bucket limits
    them all. ``tee`` gets every line (cut, but never dropped), for a tail.
    """

    def __init__(self, program: str, limits: OutputLimits = DEFAULT_LIMITS, *,
                 tee: Callable[[str], None] | None = None, stream: IO[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.program = program
        self.limits = limits
        self.tee = tee
        self._stream = stream
        self._bucket = TokenBucket(limits.rate, limits.burst, clock)
        #: Lines dropped since the last summary, and in all.
        self._pending = 0
        self.dropped = 0
        self._summary: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<ProgramOutput {self.program!r}>"

    def write_output(self, stream: str, data: bytes, length: int) -> None:
        """One line from the program's ``stream`` (``stdout``/``stderr``), without its
        newline; ``length`` is its length in bytes (more than ``len(data)`` when the
        reader has cut it already)."""
        cut = length if length > self.limits.max_line else None
        text = None
        if self.tee is not None:
            text = _decode(data, self.limits.max_line)
            self.tee(_marked(text, cut))
        if not self._bucket.take():
            self._pending += 1
            self.dropped += 1
            if self._summary is None:
                self._schedule_summary()
            return
        if text is None:
            text = _decode(data, self.limits.max_line)
        if _style.json:
            doc = self._doc("info", text, OUTPUT_EVENT, stream=stream)
            if cut is not None:
                doc["truncated_from"] = cut
            self._write(json_line(doc, _ascii_only(self._target())))
        else:
            self._write(f"[{self.program}] {_marked(text, cut)}")

    def flush(self) -> None:
        """Write the summary of the lines dropped since the last one, if any."""
        if self._summary is not None:
            self._summary.cancel()
            self._summary = None
        count, self._pending = self._pending, 0
        if not count:
            return
        limits = self.limits
        why = f"more than {limits.rate:g} lines/s (bursts of {limits.burst})"
        if _style.json:
            doc = self._doc("warning", f"program {self.program}: {count} output lines dropped: "
                                       f"{why}", DROPPED_EVENT, dropped=count)
            self._write(json_line(doc, _ascii_only(self._target())))
        else:
            self._write(f"[{self.program}] ({count} lines dropped by the sidecar: {why})")

    def _schedule_summary(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): summarise at once
            self.flush()
            return
        self._summary = loop.call_later(self.limits.summary_interval, self.flush)

    def _doc(self, level: str, message: str, event: str, **fields: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {"time": rfc3339(time.time()), "level": level,
                               "logger": PROGRAM_LOGGER, "message": message}
        plugin = current_plugin.get()
        if plugin:
            doc["plugin"] = plugin
        if _style.service_label:
            doc["service_label"] = _style.service_label
        doc["event"] = event
        doc["program"] = self.program
        doc.update(fields)
        return doc

    def _target(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    def _write(self, line: str) -> None:
        target = self._target()
        target.write(line + "\n")  # one write: a line never interleaves with another
        target.flush()


def _decode(data: bytes, limit: int) -> str:
    """UTF-8 with U+FFFD for what is not; a character cut at ``limit`` is left out."""
    if len(data) <= limit:
        return data.decode("utf-8", "replace")
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data[:limit], final=False)


def _marked(text: str, cut: int | None) -> str:
    return text if cut is None else f"{text}… [truncated from {cut} bytes]"


#: Line ends to JSON's decoders but not to Python's or JavaScript's: escaped as well, so
#: that any reader splits the output into the same lines.
_LINE_BREAKS = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(doc: dict[str, Any], ensure_ascii: bool = False) -> str:
    """``doc`` as one line of JSON, whatever its strings hold."""
    text = json.dumps(doc, ensure_ascii=ensure_ascii, separators=(",", ":"), default=str)
    return text if ensure_ascii else text.translate(_LINE_BREAKS)


def _ascii_only(target: IO[str]) -> bool:
    """Whether to escape every non-ASCII character: ``target`` cannot encode them (a
    sidecar started with LANG=C and no UTF-8 mode)."""
    encoding = getattr(target, "encoding", None) or "utf-8"
    try:
        return codecs.lookup(encoding).name != "utf-8"
    except LookupError:
        return True


__all__ = [
    "DEFAULT_LIMITS",
    "DROPPED_EVENT",
    "OUTPUT_EVENT",
    "PROGRAM_LOGGER",
    "OutputLimits",
    "ProgramOutput",
    "TokenBucket",
    "json_line",
    "json_mode",
    "rfc3339",
    "set_service_label",
    "use_format",
]

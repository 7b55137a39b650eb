"""Log lines that any client can cause, at most one per interval and kind.

A refused admin request, a connection closed at the connection limit, an
``accept()`` that found no free descriptor: a client decides how often these
happen, so each is counted exactly in a metric and logged at most once per
``interval`` per kind; the next line says how many were folded into it::

    limited = RateLimitedLog(logging.getLogger("sidecar.rest"), interval=10.0)
    limited.warning("refused", "refused %s %s from %s: %s", method, path, peer, reason)
    # ... "refused PUT /log/x/debug from 10.0.0.7: needs-token (and 2770 more since 12:00:01)"

Kinds are a small fixed set chosen by the caller (never a client's address),
so the table of kinds cannot grow without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

#: Seconds between two lines of the same kind.
DEFAULT_INTERVAL = 10.0


@dataclass
class _Kind:
    next_line: float
    since: float
    folded: int = 0


class RateLimitedLog:
    """``logger`` at most once per ``interval`` per kind; safe to call from several threads."""

    def __init__(self, logger: logging.Logger, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._wall_clock = wall_clock
        self._kinds: dict[Hashable, _Kind] = {}
        self._lock = threading.Lock()

    def log(self, kind: Hashable, level: int, message: str, *args: object) -> bool:
        """Log now, or fold into the next line of ``kind``; whether a line was written."""
        if not self.logger.isEnabledFor(level):
            return False
        now = self._clock()
        with self._lock:
            entry = self._kinds.get(kind)
            if entry is not None and now < entry.next_line:
                entry.folded += 1
                return False
            folded, since = (entry.folded, entry.since) if entry is not None else (0, 0.0)
            self._kinds[kind] = _Kind(next_line=now + self.interval, since=self._wall_clock())
        if folded:
            stamp = time.strftime("%H:%M:%S", time.localtime(since))
            message += f" (and {folded} more since {stamp}; at most one line per " \
                       f"{self.interval:g}s)"
        self.logger.log(level, message, *args)
        return True

    def warning(self, kind: Hashable, message: str, *args: object) -> bool:
        return self.log(kind, logging.WARNING, message, *args)

    def error(self, kind: Hashable, message: str, *args: object) -> bool:
        return self.log(kind, logging.ERROR, message, *args)

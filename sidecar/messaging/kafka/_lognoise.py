"""Summarise the Kafka client library's repeated warnings and errors.

When a connected broker dies, aiokafka logs every failed reconnect, metadata
request and fetch: hundreds of lines in a few seconds, which bury everything
else the sidecar says. The first record of a kind (same logger, level and
message template) passes; its repeats within ``interval`` are counted, and the
count is logged once per interval (``N more like this in the last 10s: <the
latest>``) for as long as they go on. Debug and info records always pass: they
are off unless someone asked for them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["DEFAULT_INTERVAL", "LIBRARY_LOGGER", "RepeatSummary"]

#: Seconds over which the repeats of a record are counted before the count is logged.
DEFAULT_INTERVAL = 10.0

#: aiokafka's loggers are this one and its children.
LIBRARY_LOGGER = "aiokafka"

#: Set on the summaries this filter logs, so that they pass it.
_SUMMARY = "sidecar_repeat_summary"


@dataclass
class _Window:
    start: float
    suppressed: int = 0
    latest: str = ""


class RepeatSummary(logging.Filter):
    """A filter for a library's loggers; ``install`` puts it on every one that exists."""

    def __init__(self, interval: float = DEFAULT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        if interval <= 0:
            raise ValueError("the summary interval must be greater than zero")
        self.interval = interval
        self._clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._loggers: list[logging.Logger] = []
        #: Records held back so far (for metrics and tests).
        self.suppressed = 0

    def install(self, prefix: str = LIBRARY_LOGGER) -> None:
        """Filter every logger named ``prefix`` or ``prefix.*``.

        A filter on a logger sees only what is logged on that very logger, not
        what its children propagate: hence one per logger, on the loggers that
        exist now. The library creates them as it is imported: import it first.
        """
        for name, logger in list(logging.root.manager.loggerDict.items()):
            if (name == prefix or name.startswith(prefix + ".")) \
                    and isinstance(logger, logging.Logger) and self not in logger.filters:
                logger.addFilter(self)
                self._loggers.append(logger)

    def uninstall(self) -> None:
        """Report what is still counted, and filter nothing from now on."""
        self.flush(everything=True)
        for logger in self._loggers:
            logger.removeFilter(self)
        self._loggers.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or getattr(record, _SUMMARY, False):
            return True
        now = self._clock()
        self.flush(now=now)
        key = (record.name, record.levelno, str(record.msg))
        window = self._windows.get(key)
        if window is None:
            self._windows[key] = _Window(now)
            return True
        window.suppressed += 1
        window.latest = record.getMessage()
        self.suppressed += 1
        return False

    def flush(self, *, now: float | None = None, everything: bool = False) -> None:
        """Log the counts of the windows that have ended (all of them with ``everything``)."""
        now = self._clock() if now is None else now
        for key, window in list(self._windows.items()):
            if not everything and now - window.start < self.interval:
                continue
            if window.suppressed == 0:
                # Quiet for a whole interval: the next one is a "first" again.
                del self._windows[key]
                continue
            name, level, _ = key
            logging.getLogger(name).log(
                level, "%d more like this in the last %.0fs: %s", window.suppressed,
                now - window.start, window.latest, extra={_SUMMARY: True})
            if everything:
                del self._windows[key]
            else:  # still going on: keep counting in a new window
                self._windows[key] = _Window(now)

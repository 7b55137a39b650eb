"""cn-infra's level names mapped onto Python's numeric levels.

cn-infra (logrus) has ``trace`` below ``debug`` and ``panic`` above ``fatal``;
Python has neither, so they get their own numbers and names here. The
mapping is stdlib-only, so the command line can validate a level without
importing the server.
"""

from __future__ import annotations

import logging

TRACE = 5
PANIC = 60

#: Every accepted name, lower case; ``warn``/``warning`` and ``fatal``/``critical`` are aliases.
LEVELS: dict[str, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "critical": logging.CRITICAL,
    "panic": PANIC,
}

#: The name shown for each level (cn-infra's spelling).
NAMES: dict[int, str] = {
    TRACE: "trace",
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
    PANIC: "panic",
}

VALID_LEVELS = ", ".join(LEVELS)

logging.addLevelName(TRACE, "TRACE")
logging.addLevelName(PANIC, "PANIC")


class InvalidLevelError(ValueError):
    """A level name that is not one of :data:`LEVELS`; the message lists the valid ones."""

    def __init__(self, value: object, source: str = "") -> None:
        self.value = value
        where = f"{source}: " if source else ""
        super().__init__(f"{where}unknown log level {value!r}; valid levels are: {VALID_LEVELS}")


def parse_level(value: str, source: str = "") -> int:
    """The numeric level of a cn-infra level name (any case); ``source`` names it in errors."""
    level = LEVELS.get(value.strip().lower()) if isinstance(value, str) else None
    if level is None:
        raise InvalidLevelError(value, source)
    return level


def level_name(level: int) -> str:
    """cn-infra's name of ``level``; a level between two names shows as its number."""
    return NAMES.get(level, str(level))


__all__ = ["LEVELS", "NAMES", "PANIC", "TRACE", "VALID_LEVELS", "InvalidLevelError",
           "level_name", "parse_level"]

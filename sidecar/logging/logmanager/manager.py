"""Levels of every logger in the process: list, set (optionally for a while), reset.

Pure logic on the :mod:`logging` module; the REST plugin sits on top. A
temporary level (``ttl``) is reverted by a timer on the event loop to the level
the logger had before the temporary change began. Every change is an audit line
(``log.level.set``, ``log.level.reset``, ``log.level.expired``), written before the
change takes effect: quieting the audit logger is itself on record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sidecar.config.duration import format_duration
from sidecar.logging.audit import AUDIT_LOGGER, Caller, audit
from sidecar.logging.levels import level_name, parse_level

from .api import MAX_TTL, ROOT, ChangeListener, LoggerLevel
from .config import LogsConfig
from .errors import UnknownLoggerError

log = logging.getLogger("sidecar.logmanager")

@dataclass(slots=True)
class _Temporary:
    expires: float
    revert_to: int
    handle: asyncio.TimerHandle


class LevelManager:
    """Applies ``logs.conf`` and changes levels at run time; :meth:`restore` undoes it all."""

    def __init__(self, config: LogsConfig | None = None, default_level: int | None = None) -> None:
        self.config = config or LogsConfig()
        self.default_level = (default_level if default_level is not None
                              else parse_level(self.config.default_level))
        # The audit trail stays at info when the default is quieter (unless listed).
        self._configured: dict[str, int] = {ROOT: self.default_level, AUDIT_LOGGER: logging.INFO}
        for entry in self.config.loggers:
            self._configured[entry.name] = parse_level(entry.level)
        self._original: dict[str, int] = {}
        self._temporary: dict[str, _Temporary] = {}
        self._listeners: list[ChangeListener] = []

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    # -- lifecycle -----------------------------------------------------------
    def apply(self) -> None:
        """Set the root to the default level and each configured logger to its level."""
        for name, level in self._configured.items():
            self._set_level(_logger(name), level)
        log.debug("log levels applied: default %s, %d configured logger(s)",
                  level_name(self.default_level), len(self._configured) - 1)

    def restore(self) -> None:
        """Cancel pending reverts and give every touched logger its level from before."""
        for temporary in self._temporary.values():
            temporary.handle.cancel()
        self._temporary.clear()
        for name, level in self._original.items():
            _logger(name).setLevel(level)
        self._original.clear()

    # -- queries -------------------------------------------------------------
    def names(self) -> list[str]:
        """Every logger of the process, including parents that only exist as a prefix."""
        return sorted({ROOT, *logging.root.manager.loggerDict})

    def list_all(self) -> list[LoggerLevel]:
        """Every logger and its level, sorted by name (``GET /log/list``)."""
        return [self.get(name) for name in self.names()]

    def get(self, name: str) -> LoggerLevel:
        logger = self._known(name)
        temporary = self._temporary.get(name)
        return LoggerLevel(name, level_name(logger.getEffectiveLevel()),
                           temporary.expires if temporary else None)

    def configured_level(self, name: str) -> int:
        """What ``reset`` returns ``name`` to: its logs.conf level, else inherit (NOTSET)."""
        return self._configured.get(name, logging.NOTSET)

    # -- changes -------------------------------------------------------------
    def set(self, name: str, level: str | int, ttl: float | None = None,
            caller: Caller | None = None) -> LoggerLevel:
        """Give ``name`` ``level``; with ``ttl`` (seconds) revert it after that long.
        ``caller`` (an admin request's) goes into the audit line.

        Raises :class:`UnknownLoggerError` or ``InvalidLevelError`` (a ValueError).
        """
        numeric = parse_level(level) if isinstance(level, str) else level
        logger = self._known(name)
        if ttl is not None and not 0 < ttl <= MAX_TTL:  # NaN fails this too
            raise ValueError(f"ttl must be greater than zero and at most "
                             f"{format_duration(MAX_TTL)}, got {ttl!r}s")
        until = f" for {format_duration(ttl)}" if ttl is not None else ""
        fields: dict[str, object] = {"ttl": ttl} if ttl is not None else {}
        audit("log.level.set", "log level of %s set to %s%s", name, level_name(numeric), until,
              caller=caller, target_logger=name, target_level=level_name(numeric), **fields)
        previous = self._temporary.pop(name, None)
        if previous is not None:
            previous.handle.cancel()
        if ttl is not None:
            # A temporary change on top of another still returns to the level from before both.
            revert_to = previous.revert_to if previous is not None else logger.level
            handle = asyncio.get_running_loop().call_later(ttl, self._expire, name)
            self._temporary[name] = _Temporary(time.time() + ttl, revert_to, handle)
        self._set_level(logger, numeric)
        self._notify(name, numeric, "set")
        return self.get(name)

    def reset(self, name: str, caller: Caller | None = None) -> LoggerLevel:
        """Return ``name`` to its configured level and cancel a pending revert."""
        logger = self._known(name)
        level = self.configured_level(name)
        shown = level_name(level) if level else "inherited"
        audit("log.level.reset", "log level of %s reset to %s", name, shown, caller=caller,
              target_logger=name, target_level=shown)
        temporary = self._temporary.pop(name, None)
        if temporary is not None:
            temporary.handle.cancel()
        self._set_level(logger, level)
        self._notify(name, level, "reset")
        return self.get(name)

    def _expire(self, name: str) -> None:
        temporary = self._temporary.pop(name, None)
        if temporary is None:
            return
        shown = level_name(temporary.revert_to) if temporary.revert_to else "inherited"
        audit("log.level.expired", "log level of %s reverted to %s: its ttl expired", name,
              shown, target_logger=name, target_level=shown)
        self._set_level(_logger(name), temporary.revert_to)
        self._notify(name, temporary.revert_to, "expired")

    def _set_level(self, logger: logging.Logger, level: int) -> None:
        name = ROOT if logger is logging.root else logger.name
        self._original.setdefault(name, logger.level)
        logger.setLevel(level)

    def _known(self, name: str) -> logging.Logger:
        if name != ROOT and name not in logging.root.manager.loggerDict:
            raise UnknownLoggerError(name, self.names())
        return _logger(name)

    def _notify(self, name: str, level: int, cause: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(name, level, cause)
            except Exception:
                log.exception("log level listener %r failed", listener)


def _logger(name: str) -> logging.Logger:
    return logging.getLogger() if name == ROOT else logging.getLogger(name)

"""The log manager's contract: a logger's level as ``GET /log/list`` shows it, change listeners."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ROOT = "root"
#: The longest ttl of a temporary level: a week (168h). A level meant to stay is set
#: without one (or in logs.conf).
MAX_TTL = 7 * 24 * 3600.0

#: Called after every change with the logger's name, its new level and why
#: (``set``, ``reset``, ``expired``).
ChangeListener = Callable[[str, int, str], None]


@dataclass(frozen=True, slots=True)
class LoggerLevel:
    """A row of ``GET /log/list``."""

    logger: str
    #: The level in force (inherited from a parent when the logger has none of its own).
    level: str
    #: Unix time when a temporary level is reverted.
    expires: float | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"logger": self.logger, "level": self.level}
        if self.expires is not None:
            data["expires"] = round(self.expires, 3)
        return data

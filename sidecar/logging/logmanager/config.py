"""``logs.conf``: the default level and per-logger levels, as in cn-infra.

::

    default-level: info          # INITIAL_LOGLVL (or --log-level) wins over this
    loggers:
      - name: sidecar.etcd
        level: debug
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sidecar.logging.levels import parse_level


@dataclass(frozen=True)
class LoggerConfig:
    """One logger's level at start-up (and what ``DELETE /log/<logger>`` returns it to)."""

    #: The logger's name, e.g. ``sidecar.etcd`` or ``aiohttp.access``; ``root`` is the root.
    name: str
    #: trace, debug, info, warn/warning, error, fatal or panic.
    level: str

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("name must not be empty")
        parse_level(self.level, "level")


@dataclass(frozen=True)
class LogsConfig:
    #: The root logger's level, which every logger without its own inherits.
    default_level: str = "info"
    #: Loggers that start with a level of their own.
    loggers: list[LoggerConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        parse_level(self.default_level, "default-level")
        seen: set[str] = set()
        for entry in self.loggers:
            if entry.name == "root":
                raise ValueError("loggers: the root logger's level is default-level")
            if entry.name in seen:
                raise ValueError(f"loggers: {entry.name!r} is listed twice")
            seen.add(entry.name)

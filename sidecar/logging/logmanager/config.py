"""``logs.conf``: the default level and per-logger levels, as in cn-infra.

::

    default-level: info          # INITIAL_LOGLVL (or --log-level) wins over this
    loggers:
      - name: sidecar.etcd
        level: debug

A cn-infra agent's ``logs.conf`` loads unchanged: keys match in any case, as
cn-infra's decoder matches them (``Name``, ``Level``, ``Default-Level``; also
``DefaultLevel``, which cn-infra silently ignored), and its ``hooks`` section
is read but not applied (the sidecar logs to stderr only; the log manager
warns naming each hook).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sidecar.config import keys_in_any_case
from sidecar.logging.levels import parse_level

#: The hooks cn-infra's log manager knows (and fails to start on any other).
CN_INFRA_HOOKS = ("syslog", "logstash", "fluent")


@keys_in_any_case
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


@keys_in_any_case
@dataclass(frozen=True)
class HookConfig:
    """A cn-infra log hook (syslog, logstash, fluent): accepted, not applied."""

    protocol: str = ""
    address: str = ""
    port: int = 0
    levels: list[str] = field(default_factory=list)
    #: Not a cn-infra hook setting (its decoder drops it), but its sample file writes it.
    level: str | None = None


@keys_in_any_case
@dataclass(frozen=True)
class LogsConfig:
    #: The root logger's level, which every logger without its own inherits.
    default_level: str = "info"
    #: Loggers that start with a level of their own.
    loggers: list[LoggerConfig] = field(default_factory=list)
    #: cn-infra's log hooks by name; the sidecar does not implement them and warns.
    hooks: dict[str, HookConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        parse_level(self.default_level, "default-level")
        seen: set[str] = set()
        for entry in self.loggers:
            if entry.name == "root":
                raise ValueError("loggers: the root logger's level is default-level")
            if entry.name in seen:
                raise ValueError(f"loggers: {entry.name!r} is listed twice")
            seen.add(entry.name)

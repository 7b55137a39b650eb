"""``statuscheck.conf``: intervals, and the health groups that answer the probes.

    liveness:  {exclude: [...], include: [...], grace: {NAME: DURATION}}
    readiness: {exclude: [...], include: [...], grace: {NAME: DURATION}}
    groups:    {startup: {include: [...], ...}}      # served at /health/<name>
    grace:     {NAME: DURATION}                      # for every group
    non-fatal: [...]                                 # cn-infra's name: liveness exclude

A NAME is a status check's name (``etcd``, ``program:web``) or a pattern
(``program:*``, ``*``) as fnmatch reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated

from sidecar.config import DURATION

from .api import PROBE_GROUPS

#: An extra group's name: it is a path segment (``/health/<name>``).
_GROUP_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_PATTERN_CHARS = frozenset("*?[")


def is_pattern(name: str) -> bool:
    """A name with a wildcard matches several checks (``program:*``)."""
    return any(c in _PATTERN_CHARS for c in name)


@dataclass(frozen=True)
class GroupConfig:
    """Which plugins a health group counts, and how long their ERROR waits to count."""

    #: Counted besides the group's defaults (names or patterns; ``*`` is every plugin).
    include: list[str] = field(default_factory=list)
    #: Never counted, whatever ``include`` or the defaults say.
    exclude: list[str] = field(default_factory=list)
    #: NAME -> how long its ERROR lasts before it counts for this group (beats the
    #: top-level ``grace``).
    grace: dict[str, Annotated[float, DURATION]] = field(default_factory=dict)

    def names(self) -> list[tuple[str, str]]:
        """Every NAME it mentions, with its key (``include[0]``, ``grace.etcd``)."""
        return ([(f"include[{i}]", n) for i, n in enumerate(self.include)]
                + [(f"exclude[{i}]", n) for i, n in enumerate(self.exclude)]
                + [(f"grace.{n}", n) for n in self.grace])


@dataclass(frozen=True)
class StatusCheckConfig:
    #: How often pull probes are called.
    probe_interval: Annotated[float, DURATION] = 5.0
    #: A probe that takes longer is ERROR ("did not answer within ...").
    probe_timeout: Annotated[float, DURATION] = 3.0
    #: All status keys are re-put this often to refresh ``last_update``.
    publish_interval: Annotated[float, DURATION] = 10.0
    #: The plugins that answer ``/liveness`` (by default those that declare it: user
    #: plugins, fatal programs, the process manager and the supervisor).
    liveness: GroupConfig = field(default_factory=GroupConfig)
    #: The plugins that answer ``/readiness`` and the Pod's ``cninfra.io/ready``
    #: (by default all but those that only report to a shared server).
    readiness: GroupConfig = field(default_factory=GroupConfig)
    #: Extra groups, each served at ``/health/<name>``; a plugin counts only when
    #: ``include`` names it.
    groups: dict[str, GroupConfig] = field(default_factory=dict)
    #: NAME -> how long its ERROR lasts before it counts, for every group.
    grace: dict[str, Annotated[float, DURATION]] = field(default_factory=dict)
    #: cn-infra's key, kept working: the same as ``liveness.exclude``.
    non_fatal: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key in ("probe_interval", "probe_timeout", "publish_interval"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key.replace('_', '-')} must be greater than zero")
        for name, group in self.groups.items():
            if name in PROBE_GROUPS:
                raise ValueError(f"groups.{name}: {name} is a top-level key of its own "
                                 f"(write '{name}:' instead of 'groups: {{{name}: ...}}')")
            if not _GROUP_NAME.match(name):
                raise ValueError(f"groups.{name}: a group name is lower-case letters, digits, "
                                 "'-' and '_' (it is the path /health/<name>)")
            if not group.include:
                raise ValueError(f"groups.{name}.include: name the plugins this group counts "
                                 "(or '*' for every plugin)")
        for where, name in self.names():
            if not name.strip():
                raise ValueError(f"{where}: a plugin name must not be empty")

    def group_configs(self) -> dict[str, GroupConfig]:
        """Every group by name: liveness (with ``non-fatal`` in its exclude), readiness,
        then the extra groups."""
        liveness = self.liveness
        if self.non_fatal:
            liveness = GroupConfig(liveness.include, [*liveness.exclude, *self.non_fatal],
                                   liveness.grace)
        return {"liveness": liveness, "readiness": self.readiness, **self.groups}

    def names(self) -> list[tuple[str, str]]:
        """Every plugin NAME the file mentions, with its key (``readiness.include[0]``)."""
        found: list[tuple[str, str]] = []
        for group, config in (("liveness", self.liveness), ("readiness", self.readiness),
                              *((f"groups.{n}", c) for n, c in self.groups.items())):
            found += [(f"{group}.{key}", name) for key, name in config.names()]
        found += [(f"grace.{n}", n) for n in self.grace]
        found += [(f"non-fatal[{i}]", n) for i, n in enumerate(self.non_fatal)]
        return found

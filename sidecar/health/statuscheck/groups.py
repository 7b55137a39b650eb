"""Health groups: which plugins each group counts, their grace, and the group's state.

A plugin's membership is decided when it registers: the groups it declares
(:data:`~.api.DEFAULT_GROUPS` unless it says otherwise), plus the group's
``include``, minus its ``exclude`` (exclude wins). Its grace in a group is the
first of: the group's ``grace``, the top-level ``grace``, what the plugin declared.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from sidecar.config import ConfigValueError, did_you_mean

from .api import DEFAULT_GROUPS, LIVENESS, GroupStatus, PluginState, PluginStatus, group_up
from .config import GroupConfig, StatusCheckConfig, is_pattern


def aggregate(states: list[PluginState], started: bool) -> PluginState:
    """ERROR if any plugin is ERROR, else INIT while starting or if any is INIT, else OK."""
    if PluginState.ERROR in states:
        return PluginState.ERROR
    if not started or PluginState.INIT in states:
        return PluginState.INIT
    return PluginState.OK


def default_groups(groups: Collection[str] | None, fatal: bool | None) -> frozenset[str]:
    """What a plugin declares at ``register``: ``groups`` (both probes when None), with
    liveness added by ``fatal=True`` and removed by ``fatal=False``."""
    declared = set(DEFAULT_GROUPS if groups is None else groups)
    if fatal is True:
        declared.add(LIVENESS)
    elif fatal is False:
        declared.discard(LIVENESS)
    return frozenset(declared)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, p) for p in patterns)


def _lookup(name: str, grace: Mapping[str, float]) -> float | None:
    """An exact name first, else the first pattern (in file order) that matches."""
    if name in grace:
        return grace[name]
    for pattern, seconds in grace.items():
        if is_pattern(pattern) and fnmatchcase(name, pattern):
            return seconds
    return None


@dataclass(frozen=True)
class Membership:
    """Where one plugin counts: group -> its grace there (seconds)."""

    grace: Mapping[str, float]

    @property
    def groups(self) -> frozenset[str]:
        return frozenset(self.grace)


class GroupRules:
    """statuscheck.conf's groups, applied to each plugin as it registers."""

    def __init__(self, config: StatusCheckConfig) -> None:
        self._groups: dict[str, GroupConfig] = config.group_configs()
        self._grace = config.grace

    @property
    def names(self) -> tuple[str, ...]:
        """liveness, readiness, then the extra groups in file order."""
        return tuple(self._groups)

    def membership(self, name: str, declared: frozenset[str], grace: float) -> Membership:
        """The groups ``name`` counts for, given what it ``declared`` and its own ``grace``."""
        counted: dict[str, float] = {}
        for group, config in self._groups.items():
            if _matches(name, config.exclude):
                continue
            if group in declared or _matches(name, config.include):
                own = _lookup(name, config.grace)
                if own is None:
                    own = _lookup(name, self._grace)
                counted[group] = grace if own is None else own
        return Membership(counted)


def evaluate(group: str, plugins: Mapping[str, PluginStatus], started: bool,
             held: Mapping[str, tuple[PluginState, int]]) -> GroupStatus:
    """The group's state: the logical AND of the plugins it counts.

    ``held`` are its members in ERROR within their grace: name -> (the state they
    count as meanwhile, the Unix second from which their ERROR counts).
    """
    counted: list[str] = []
    left_out: list[str] = []
    states: list[PluginState] = []
    in_grace: dict[str, int] = {}
    for name, status in sorted(plugins.items()):
        if group not in status.groups:
            left_out.append(name)
            continue
        counted.append(name)
        if name in held:
            state, counts_from = held[name]
            in_grace[name] = counts_from
            states.append(state)
        else:
            states.append(status.state)
    state = aggregate(states, started)
    return GroupStatus(group, state, group_up(group, state), tuple(counted), tuple(left_out),
                       in_grace)


def check_names(config: StatusCheckConfig, source: str, known: Collection[str],
                families: Collection[str] = ()) -> None:
    """Every name statuscheck.conf mentions is a pattern, one of ``known``, or a
    ``families`` prefix plus a name (``program:web``); else a ConfigValueError that
    names the key and the closest known name."""
    for where, name in config.names():
        if is_pattern(name) or name in known:
            continue
        if any(name.startswith(f) and len(name) > len(f) for f in families):
            continue
        choices = sorted(known)
        forms = ", ".join([*choices, *(f"{f}<name>" for f in families)])
        raise ConfigValueError(
            source, where,
            f"no plugin {name!r}{did_you_mean(name, choices)}; the plugins are: {forms}, "
            "or a pattern such as 'program:*'")

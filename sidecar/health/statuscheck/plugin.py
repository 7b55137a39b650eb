"""The status check plugin: a registry of plugin states, aggregated with a logical AND:
over all plugins for the agent state, over each health group's plugins for its probe."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Collection

from sidecar.agent.errors import reason
from sidecar.agent.tasks import cancel_and_wait, spawn
from sidecar.buildinfo import BuildInfo
from sidecar.buildinfo import current as current_build

from .api import (
    AgentStatus,
    ChangeListener,
    GroupStatus,
    PluginState,
    PluginStatus,
    Probe,
    ProbeObserver,
)
from .config import StatusCheckConfig
from .groups import GroupRules, Membership, aggregate, default_groups, evaluate

log = logging.getLogger("sidecar.statuscheck")


def _probe_result(result: object) -> tuple[PluginState, str | None]:
    if result is None:
        return PluginState.OK, None
    if isinstance(result, PluginState):
        return result, None
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], PluginState):
        error = result[1]
        return result[0], str(error) if error else None
    raise TypeError(f"a probe returned {result!r}; expected None, a PluginState "
                    "or (PluginState, error)")


class StatusCheckPlugin:
    """Registry and aggregation; probes and publishers run as background tasks.

    A plugin's ERROR counts for a group once it has lasted the plugin's grace in
    that group; a timer re-evaluates the groups when the first grace runs out.
    """

    name = "statuscheck"

    def __init__(
        self,
        config: StatusCheckConfig | None = None,
        build: BuildInfo | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or StatusCheckConfig()
        self._build = build or current_build()
        self._clock = clock
        now = int(clock())
        self._start_time = now
        self._plugins: dict[str, PluginStatus] = {}
        self._rules = GroupRules(self.config)
        self._members: dict[str, Membership] = {}
        #: Plugins in ERROR: name -> (time.monotonic() when it began, the state before).
        self._errored: dict[str, tuple[float, PluginState]] = {}
        self._groups: dict[str, GroupStatus] = {}
        self._grace_timer: asyncio.TimerHandle | None = None
        self._probes: dict[str, Probe] = {}
        self._running_probes: dict[str, asyncio.Task[object]] = {}
        self._listeners: list[ChangeListener] = []
        self._probe_observers: list[ProbeObserver] = []
        self._started = False
        self._state = PluginState.INIT
        self._last_change = now
        self._last_update = now
        self._revision = 0
        self._cached: AgentStatus | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._groups = self._evaluate_groups(now)

    # -- write side ---------------------------------------------------------
    def register(self, name: str, probe: Probe | None = None, *, fatal: bool | None = None,
                 groups: Collection[str] | None = None, grace: float = 0.0) -> None:
        if not name:
            raise ValueError("a status check name must not be empty")
        if grace < 0:
            raise ValueError(f"{name}: a grace must not be negative")
        # statuscheck.conf has the last word over what the plugin declares.
        membership = self._rules.membership(name, default_groups(groups, fatal), grace)
        self._members[name] = membership
        now = int(self._clock())
        previous = self._plugins.get(name)
        if previous is None:
            self._plugins[name] = PluginStatus(PluginState.INIT, now, now, None,
                                               membership.groups)
        else:
            self._plugins[name] = PluginStatus(previous.state, previous.last_change, now,
                                               previous.error, membership.groups)
        if probe is not None:
            self._probes[name] = probe
        else:
            self._probes.pop(name, None)
        self._changed()

    def unregister(self, name: str) -> None:
        """Forget ``name`` (for example a removed program); its published key is deleted."""
        self._probes.pop(name, None)
        self._members.pop(name, None)
        self._errored.pop(name, None)
        if self._plugins.pop(name, None) is not None:
            self._changed()

    def report_state_change(self, name: str, state: PluginState, error: str | None = None) -> None:
        if name not in self._plugins:
            self.register(name)
        self._set(name, PluginState(state), error or None)

    def _set(self, name: str, state: PluginState, error: str | None) -> None:
        previous = self._plugins.get(name)
        if previous is None:  # unregistered while its probe ran
            return
        now = int(self._clock())
        if state is PluginState.OK:
            error = None
        if previous.state is state and previous.error == error:
            self._plugins[name] = PluginStatus(state, previous.last_change, now, error,
                                               previous.groups)
            self._touch(now)
            return
        if state is PluginState.ERROR:
            log.warning("plugin %s is ERROR: %s", name, error or "no reason given")
            if previous.state is not PluginState.ERROR:
                self._errored[name] = (time.monotonic(), previous.state)
        elif previous.state is PluginState.ERROR:
            log.info("plugin %s recovered: %s", name, state.name)
            self._errored.pop(name, None)
        self._plugins[name] = PluginStatus(state, now, now, error, previous.groups)
        self._changed()

    def mark_started(self) -> None:
        """The agent has started every plugin: the overall state may now become OK."""
        self._started = True
        self._changed()

    # -- aggregation ---------------------------------------------------------
    def _touch(self, now: int) -> None:
        self._last_update = now
        self._revision += 1
        self._cached = None

    def _changed(self) -> None:
        now = int(self._clock())
        state = aggregate([s.state for s in self._plugins.values()], self._started)
        if state is not self._state:
            log.info("agent state %s -> %s", self._state.name, state.name)
            self._state = state
            self._last_change = now
        self._groups = self._evaluate_groups(now)
        self._touch(now)
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("status listener %r failed", listener)

    def _evaluate_groups(self, now: int) -> dict[str, GroupStatus]:
        """Every group's status; a timer is set for the first grace that runs out."""
        clock = time.monotonic()
        first_expiry = math.inf
        groups: dict[str, GroupStatus] = {}
        for group in self._rules.names:
            held: dict[str, tuple[PluginState, int]] = {}
            for name, (since, before) in self._errored.items():
                left = since + self._members[name].grace.get(group, 0.0) - clock
                if left > 0:
                    held[name] = (before, math.ceil(now + left))
                    first_expiry = min(first_expiry, left)
            status = evaluate(group, self._plugins, self._started, held)
            previous = self._groups.get(group)
            if previous is not None and previous.state is not status.state:
                log.info("%s group %s -> %s", group, previous.state.name, status.state.name)
            groups[group] = status
        self._set_grace_timer(first_expiry)
        return groups

    def _set_grace_timer(self, delay: float) -> None:
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        if delay == math.inf:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous test): the next change re-evaluates
        # A millisecond late, so that the grace has surely run out when it fires.
        self._grace_timer = loop.call_later(delay + 0.001, self._changed)

    # -- read side -----------------------------------------------------------
    @property
    def revision(self) -> int:
        return self._revision

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: ChangeListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def agent_status(self) -> AgentStatus:
        if self._cached is None:
            self._cached = AgentStatus(
                build_version=self._build.version,
                build_date=self._build.date,
                commit_hash=self._build.commit_hash,
                state=self._state,
                start_time=self._start_time,
                last_change=self._last_change,
                last_update=self._last_update,
                plugins=dict(self._plugins),
                groups=dict(self._groups),
            )
        return self._cached

    def plugin_status(self, name: str) -> PluginStatus | None:
        return self._plugins.get(name)

    # -- probing -------------------------------------------------------------
    async def probe_all(self) -> None:
        """Call every pull probe once, concurrently, each bounded by the probe timeout."""
        names = list(self._probes)
        if names:
            await asyncio.gather(*(self._observed_probe(n) for n in names))

    def add_probe_observer(self, observer: ProbeObserver) -> None:
        """Call ``observer(name, seconds, state)`` after every pull probe call (for metrics)."""
        self._probe_observers.append(observer)

    async def _observed_probe(self, name: str) -> None:
        begin = time.perf_counter()
        await self._probe_one(name)
        status = self._plugins.get(name)
        if status is not None:
            elapsed = time.perf_counter() - begin
            for observer in self._probe_observers:
                try:
                    observer(name, elapsed, status.state)
                except Exception:
                    log.exception("probe observer %r failed", observer)

    async def _probe_one(self, name: str) -> None:
        running = self._running_probes.get(name)
        if running is not None and not running.done():
            # The previous call never returned and ignored its cancellation.
            self._set(name, PluginState.ERROR, "probe is still running from a previous round")
            return
        probe = self._probes[name]
        task: asyncio.Task[object] = asyncio.ensure_future(probe())
        self._running_probes[name] = task
        done, _ = await asyncio.wait({task}, timeout=self.config.probe_timeout)
        if not done:
            task.cancel()  # not awaited: a probe that swallows cancellation must not stall us
            task.add_done_callback(_consume_result)
            self._set(name, PluginState.ERROR,
                      f"probe did not answer within {self.config.probe_timeout:g}s")
            return
        try:
            state, error = _probe_result(task.result())
        except asyncio.CancelledError:
            state, error = PluginState.ERROR, "probe was cancelled"
        except Exception as exc:  # noqa: BLE001 - a failing probe means ERROR with its reason
            state, error = PluginState.ERROR, reason(exc)
        self._set(name, state, error)

    def confirm(self) -> None:
        """Stamp ``last_update`` of push-reported plugins: their state still holds now."""
        now = int(self._clock())
        for name, status in self._plugins.items():
            if name not in self._probes and status.last_update != now:
                self._plugins[name] = PluginStatus(status.state, status.last_change, now,
                                                   status.error, status.groups)
        self._touch(now)

    async def _probe_loop(self) -> None:
        while True:
            try:
                await self.probe_all()
                self.confirm()
            except Exception:
                log.exception("probe round failed")
            await asyncio.sleep(self.config.probe_interval)

    # -- lifecycle -----------------------------------------------------------
    async def init(self) -> None:
        pass

    async def after_init(self) -> None:
        if self._probe_task is None:
            self._probe_task = spawn(self._probe_loop(), "statuscheck-probes")

    async def close(self) -> None:
        task, self._probe_task = self._probe_task, None
        await cancel_and_wait(task)
        self._set_grace_timer(math.inf)
        for running in self._running_probes.values():
            running.cancel()
        self._running_probes.clear()


#: The name DESIGN.md promises users (``from sidecar.health.statuscheck import StatusCheck``).
StatusCheck = StatusCheckPlugin


def _consume_result(task: asyncio.Future[object]) -> None:
    if not task.cancelled():
        task.exception()

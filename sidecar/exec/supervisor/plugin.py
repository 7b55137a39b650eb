"""The supervisor plugin: runs the programs of ``supervisor.conf``, calls its hooks, reloads it.

Programs are processes of the process manager (the process-manager plugin's
when it is on): they get their own process group and a parent-death signal,
so they die with the sidecar, and they are stopped with their stop signal,
then SIGKILL after their stop timeout, when the sidecar stops. What is done
to each program, and the events it sends, is the :mod:`.runner`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sidecar.agent.api import deps_among
from sidecar.config import ConfigError, ConfigFileError, ConfigValueError
from sidecar.exec.processmanager import (
    Process,
    ProcessManager,
    ProcessManagerPlugin,
    ProcessOptions,
)
from sidecar.health.statuscheck.api import PluginState, StatusWriter

from .api import ProgramListener
from .config import SupervisorConfig, digest, parse_supervisor_config, read_config_file
from .errors import ProgramNotFoundError, ProgramStartError, SupervisorError
from .hooks import HookRunner
from .output import OutputLog
from .programs import Program
from .results import STOP_MARGIN, ReloadResult, ReloadStats, StopBudget
from .runner import ProgramRunner
from .watch import ConfigWatcher, Signature, signature

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from sidecar.rest.api import HTTPHandlers

log = logging.getLogger("sidecar.supervisor")

#: Digests of texts applied by someone else (the k8s plugin) that the file watcher ignores.
_FOREIGN_MEMORY = 16


class SupervisorPlugin:
    """The ``supervisor`` plugin; on its own, ``async with Supervisor(config) as supervisor:``
    (or ``await init()`` ... ``await close()``).

    ``manager`` is the process manager to run programs in: a
    :class:`ProcessManagerPlugin` (then a dependency), a :class:`ProcessManager`
    owned by the caller, or None for one of its own. ``config_path``: the file
    to watch for changes. ``env``: the environment programs inherit (default
    the sidecar's).
    """

    name = "supervisor"

    def __init__(self, config: SupervisorConfig | None = None, *,
                 manager: ProcessManager | ProcessManagerPlugin | None = None,
                 statuscheck: StatusWriter | None = None,
                 rest: HTTPHandlers | None = None,
                 config_path: str | os.PathLike[str] | None = None,
                 registry: CollectorRegistry | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.config = config or SupervisorConfig()
        self._owns_manager = manager is None
        if isinstance(manager, ProcessManagerPlugin):
            self._manager = manager.manager
        else:
            # Not ``manager or ...``: an empty ProcessManager is falsy (it has __len__).
            self._manager = manager if manager is not None else ProcessManager()
        self.deps = deps_among(manager, statuscheck, rest)
        self._statuscheck = statuscheck
        self._rest = rest
        self._registry = registry
        self._collector: Any = None
        self._env = dict(env) if env is not None else None
        self._hooks = HookRunner()
        self._runner = ProgramRunner(self._manager, self._hooks, statuscheck)
        self._budgets: list[StopBudget] = []
        self._lock = asyncio.Lock()
        self._operations: set[asyncio.Task[bool]] = set()
        self._initialised = False
        self._closed = False
        self._path = Path(config_path) if config_path is not None else None
        self._watcher: ConfigWatcher | None = None
        self._file_signature: Signature | None = None
        self._applied_digest: str | None = None
        self._foreign: deque[str] = deque(maxlen=_FOREIGN_MEMORY)
        self.reloads = ReloadStats()
        #: The output of each program without a logfile, for ``programs tail``.
        self._outputs: dict[str, OutputLog] = {}

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> SupervisorPlugin:
        """Read and check ``path`` now (ConfigError if bad) and watch it once started."""
        location = Path(path)
        before = signature(location)
        text, config = read_config_file(location)
        supervisor = cls(config, config_path=location, **kwargs)
        supervisor._applied_digest = digest(text)
        supervisor._file_signature = before
        return supervisor

    # -- reading -----------------------------------------------------------------------
    @property
    def manager(self) -> ProcessManager:
        return self._manager

    @property
    def config_path(self) -> Path | None:
        return self._path

    def get_program_names(self) -> list[str]:
        """The programs in the applied config, in its order (cn-infra's GetProgramNames)."""
        return list(self._runner.programs)

    def get_program(self, name: str) -> Process | None:
        """The process of program ``name`` (cn-infra's GetProgramByName)."""
        program = self._runner.programs.get(name)
        return program.process if program is not None else None

    def program_rows(self) -> list[dict[str, Any]]:
        """Every program's name, state, pid, restarts, uptime, ... sorted by name."""
        programs = self._runner.programs
        return [programs[name].row() for name in sorted(programs)]

    def program_row(self, name: str) -> dict[str, Any]:
        """One program's row; ProgramNotFoundError if there is no such program."""
        program = self._runner.programs.get(name)
        if program is None:
            raise ProgramNotFoundError(name, sorted(self._runner.programs))
        return program.row()

    def program_log(self, name: str) -> tuple[Path | None, OutputLog]:
        """Where program ``name``'s output is: its logfile (None: the sidecar's stdout,
        kept in the OutputLog); ProgramNotFoundError if there is no such program."""
        program = self._runner.programs.get(name)
        if program is None:
            raise ProgramNotFoundError(name, sorted(self._runner.programs))
        output = self._outputs.setdefault(name, OutputLog())
        path = program.config.logfile_path
        return (Path(path) if path else None), output

    def status(self) -> dict[str, Any]:
        """The overview served at ``GET /supervisor``."""
        reloads = self.reloads
        config: dict[str, Any] = {
            "source": reloads.last_source or self.config.source,
            "applied_at": reloads.last_applied,
            "watching": str(self._path) if self._watcher and self._watcher.running else None,
            "reloads": reloads.applied,
            "rejected": reloads.rejected,
            "programs": len(self.config.programs),
            "hooks": len(self.config.hooks),
        }
        if reloads.last_error:
            config["last_error"] = {"error": reloads.last_error, "time": reloads.last_error_time}
        return {
            "config": config,
            "hooks": {"running": self._hooks.running, "pending": self._hooks.pending,
                      "dropped": self._hooks.dropped,
                      "stats": {n: s.to_dict() for n, s in sorted(self._hooks.stats.items())}},
            "programs": self.program_rows(),
        }

    @property
    def hooks(self) -> HookRunner:
        return self._hooks

    # -- listeners -----------------------------------------------------------------------
    def add_listener(self, listener: ProgramListener) -> None:
        """Call ``listener(event)`` for every program event (in the event loop; keep it cheap)."""
        self._runner.add_listener(listener)

    def remove_listener(self, listener: ProgramListener) -> None:
        self._runner.remove_listener(listener)

    # -- stop budget -------------------------------------------------------------------
    def stop_budget(self) -> float:
        """Seconds the sidecar's stop needs: the largest stop-timeout plus a margin."""
        longest = max((p.stop_timeout for p in self.config.programs), default=0.0)
        return longest + STOP_MARGIN

    def cover_stop_timeout(self, target: StopBudget) -> None:
        """Keep ``target.stop_timeout`` (the agent's) at least :meth:`stop_budget`, now and
        after every reload."""
        self._budgets.append(target)
        self._raise_budgets()

    def _raise_budgets(self) -> None:
        need = self.stop_budget()
        for target in self._budgets:
            if target.stop_timeout < need:
                log.info("stop timeout raised from %gs to %gs to let programs stop "
                         "(largest stop-timeout plus %gs)", target.stop_timeout, need,
                         STOP_MARGIN)
                target.stop_timeout = need

    # -- changing the config -----------------------------------------------------------
    async def reload_text(self, text: str, source: str) -> ReloadResult:
        """Parse ``text`` and apply it; a broken text raises ConfigError and changes nothing."""
        try:
            config = parse_supervisor_config(text, source)
            result = await self.apply_config(config)
        except ConfigError as exc:
            self._rejected(source, exc)
            raise
        text_digest = digest(text)
        self._applied_digest = text_digest
        if self._path is None or source != str(self._path):
            self._foreign.append(text_digest)
        return result

    def _rejected(self, source: str, exc: ConfigError) -> None:
        self.reloads.rejected += 1
        self.reloads.last_error = str(exc)
        self.reloads.last_error_time = time.time()
        log.error("supervisor config from %s rejected, the programs keep running as they "
                  "are: %s", source, exc)

    async def apply_config(self, config: SupervisorConfig) -> ReloadResult:
        """Make the running programs match ``config``: new ones start, removed ones stop,
        changed ones restart, unchanged ones keep running.

        Raises ConfigError (and changes nothing) if a program cannot be run as
        configured. Before the plugin has started, it only replaces the config
        to start with (every program is then reported as started).
        """
        async with self._lock:
            if self._closed:
                raise SupervisorError("the supervisor is closed")
            if not self._initialised:
                self.config = config
                return ReloadResult(started=config.program_names)
            result = await self._apply(config)
        self._applied_digest = None
        if self._watcher is not None and config.watch_interval > 0:
            self._watcher.start()  # watch-interval went from 0 to more: watch again
        self.reloads.applied += 1
        self.reloads.last_applied = time.time()
        self.reloads.last_source = config.source
        if result.changed:
            log.info("supervisor config from %s applied: %s", config.source, result)
        return result

    def _check_runnable(self, config: SupervisorConfig,
                        names: list[str]) -> dict[str, ProcessOptions]:
        """The process options of the programs to (re)create; ConfigError before any change."""
        options: dict[str, ProcessOptions] = {}
        for index, program in enumerate(config.programs):
            if program.name not in names:
                continue
            if program.name in self._manager and program.name not in self._runner.programs:
                raise ConfigValueError(config.source, f"programs[{index}].name",
                                       f"the process manager already runs a process named "
                                       f"{program.name!r} (a process template?)")
            try:
                options[program.name] = program.process_options(
                    self._env, self._outputs.setdefault(program.name, OutputLog()))
            except (ValueError, TypeError) as exc:
                raise ConfigValueError(config.source, f"programs[{index}]", str(exc)) from None
        return options

    async def _apply(self, config: SupervisorConfig) -> ReloadResult:
        runner = self._runner
        old = dict(runner.programs)
        new = {p.name: p for p in config.programs}
        removed = [n for n in old if n not in new]
        added = [n for n in new if n not in old]
        changed, updated, unchanged = [], [], []
        for name in (n for n in new if n in old):
            if old[name].config == new[name]:
                unchanged.append(name)
            elif old[name].config.same_process(new[name]):
                updated.append(name)
            else:
                changed.append(name)
        options = self._check_runnable(config, added + changed)

        self.config = config
        self._hooks.configure(config)
        self._raise_budgets()
        if removed or changed:
            results = await asyncio.gather(*(runner.remove(old[n]) for n in removed + changed),
                                           return_exceptions=True)
            for name, outcome in zip(removed + changed, results, strict=True):
                if isinstance(outcome, Exception):
                    log.error("program %s: stopping failed: %s", name, outcome)
        for name in updated:
            runner.update(old[name], new[name])
        failed = []
        for name, program in new.items():  # in the file's order
            if name in added or name in changed:
                error = await runner.add(program, options[name])
                if error is not None:
                    failed.append(name)
        runner.reorder(new)
        runner.flush()
        for name in removed:
            if (output := self._outputs.pop(name, None)) is not None:
                output.close()
        return ReloadResult(started=added, stopped=removed, restarted=changed,
                            unchanged=unchanged, updated=updated, failed=failed)

    # -- control -----------------------------------------------------------------------
    def _program(self, name: str) -> Program:
        if self._closed:
            raise SupervisorError("the supervisor is stopping")
        return self._runner.get(name)

    def begin(self, name: str, action: str) -> asyncio.Task[bool]:
        """Start ``action`` (start, stop or restart) on program ``name`` and return its task.

        The operation is the supervisor's, not the caller's: once begun it runs to its
        end (a stop can take the program's stop-timeout) whatever happens to whoever
        asked, an HTTP request that timed out or a client that went away. Until then the
        program's row says ``pending``. Raises ProgramNotFoundError or SupervisorError
        (stopping) at once; the task's result is what the method of the same name returns.
        """
        works = {"start": self._start, "stop": self._stop, "restart": self._restart}
        if action not in works:
            raise ValueError(f"unknown action {action!r}; expected start, stop or restart")
        program = self._program(name)
        program.operations += 1
        program.pending = action
        task = asyncio.get_running_loop().create_task(
            self._operate(name, program, works[action]), name=f"supervisor-{action}-{name}")
        self._operations.add(task)
        task.add_done_callback(self._operation_done)
        return task

    async def _operate(self, name: str, program: Program,
                       work: Callable[[Program], Awaitable[bool]]) -> bool:
        try:
            async with self._lock:
                current = self._program(name)
                if current is not program:  # removed (or replaced) by a reload meanwhile
                    raise ProgramNotFoundError(name, sorted(self._runner.programs))
                return await work(program)
        finally:
            program.operations -= 1
            if not program.operations:
                program.pending = None
            if self._runner.programs.get(name) is program:
                self._runner.update_health(program)

    def _operation_done(self, task: asyncio.Task[bool]) -> None:
        self._operations.discard(task)
        if task.cancelled():
            return
        error = task.exception()  # also retrieved when nobody waited for the result
        if error is not None and not isinstance(error, SupervisorError):
            log.error("%s failed: %s", task.get_name(), error, exc_info=error)

    async def start_program(self, name: str) -> bool:
        """Start it if it is not running; False if it was. ProgramStartError if it cannot."""
        return await asyncio.shield(self.begin(name, "start"))

    async def stop_program(self, name: str) -> bool:
        """Stop it (stop signal, SIGKILL after its stop-timeout); False if it was not running."""
        return await asyncio.shield(self.begin(name, "stop"))

    async def restart_program(self, name: str) -> bool:
        """Stop it if it runs, then start it. ProgramStartError if it cannot be started.

        Cancelling the caller does not cancel the restart (see :meth:`begin`)."""
        return await asyncio.shield(self.begin(name, "restart"))

    async def _start(self, program: Program) -> bool:
        if program.running and not program.stop_requested:
            return False
        error = await self._runner.start(program)
        self._runner.flush()
        if error is not None:
            raise ProgramStartError(program.name, error)
        return True

    async def _stop(self, program: Program) -> bool:
        return await self._runner.stop(program)

    async def _restart(self, program: Program) -> bool:
        await self._runner.restart(program)
        return True

    # -- the watched file --------------------------------------------------------------------
    async def _file_changed(self, text: str) -> None:
        text_digest = digest(text)
        if text_digest == self._applied_digest or text_digest in self._foreign:
            return  # already applied, or applied through the API before the file caught up
        with contextlib.suppress(ConfigError, SupervisorError):  # logged by reload_text
            await self.reload_text(text, str(self._path))

    def _file_unreadable(self, reason: str) -> None:
        self._rejected(str(self._path), ConfigFileError(self._path or Path(), reason))

    # -- lifecycle -----------------------------------------------------------------------
    async def init(self) -> None:
        if self._closed:
            raise SupervisorError("the supervisor is closed")
        try:
            await self._init()
        except BaseException:
            await self.close()  # the agent closes only plugins whose init succeeded
            raise

    async def _init(self) -> None:
        if self._owns_manager:
            await self._manager.start()
        await self._hooks.start()
        if self._rest is not None:
            from ._rest import register_routes  # aiohttp only with the REST plugin

            register_routes(self._rest, self)
        if self._registry is not None and self._collector is None:
            from .metrics import SupervisorCollector  # prometheus_client only with metrics

            self._collector = SupervisorCollector(self)
            self._registry.register(self._collector)
        if self._statuscheck is not None:
            self._statuscheck.register(self.name)
        async with self._lock:
            self._initialised = True
            result = await self._apply(self.config)
        self.reloads.last_applied = time.time()
        self.reloads.last_source = self.config.source
        log.info("supervisor: %d program(s) started%s, %d hook(s), from %s",
                 len(result.started) - len(result.failed),
                 f", {len(result.failed)} failed ({', '.join(result.failed)})"
                 if result.failed else "", len(self.config.hooks), self.config.source)
        if self._statuscheck is not None:
            self._statuscheck.report_state_change(self.name, PluginState.OK)
        if self._path is not None:
            self._watcher = ConfigWatcher(self._path, lambda: self.config.watch_interval,
                                          self._file_changed, self._file_unreadable)
            if self.config.watch_interval > 0:
                self._watcher.start(self._file_signature)

    async def after_init(self) -> None:
        pass

    async def __aenter__(self) -> SupervisorPlugin:
        await self.init()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every program (stop signal, SIGKILL after its stop-timeout) and every hook.

        Idempotent; when cancelled (the agent's stop timeout), programs still
        running get SIGKILL.
        """
        if self._closed:
            return
        self._closed = True
        try:
            if self._watcher is not None:
                await self._watcher.close()
            self._hooks.shut()  # the shutdown's own events run no hooks
            async with self._lock:  # a reload or a start/stop in flight finishes first
                programs = list(self._runner.programs.values())
                results = await asyncio.gather(
                    self._hooks.close(), *(self._runner.remove(p) for p in programs),
                    return_exceptions=True)
            for outcome in results:
                if isinstance(outcome, Exception):
                    log.error("supervisor: stopping failed: %s", outcome)
        finally:
            # Also when cancelled: what still runs is killed by the process manager's close.
            for operation in list(self._operations):  # queued behind the lock: moot now
                operation.cancel()
            self._runner.clear()
            for output in self._outputs.values():
                output.close()
            await self._hooks.close()
            if self._owns_manager:
                await self._manager.close()
            if self._collector is not None and self._registry is not None:
                self._registry.unregister(self._collector)
                self._collector = None


#: The name DESIGN.md promises users (``from sidecar.exec.supervisor import Supervisor``).
Supervisor = SupervisorPlugin

__all__ = ["Supervisor", "SupervisorPlugin"]

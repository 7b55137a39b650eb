"""The process manager plugin: ``process-manager.conf``, templates at init, health and metrics."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from sidecar.agent.api import deps_among
from sidecar.health.statuscheck.api import READINESS, PluginState, StatusWriter

from ._spawn import is_child_subreaper, set_child_subreaper
from .config import ProcessManagerConfig
from .errors import ProcessStartError, TemplateError
from .manager import ProcessManager
from .process import Process
from .reaper import child_pids, stop_orphans
from .status import ProcessState, describe_exit

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Seconds adopted orphans get between SIGTERM and SIGKILL when the sidecar stops.
ORPHAN_GRACE = 2.0

log = logging.getLogger("sidecar.exec.processmanager")

#: Status check name of a template process: ``process:<name>``.
HEALTH_PREFIX = "process:"


def process_health(process: Process) -> tuple[PluginState, str | None]:
    """OK, or ERROR with the reason: given up, crash-looping, or stopped by a signal."""
    if process.gave_up:
        how = describe_exit(process.last_returncode)
        return PluginState.ERROR, (f"exited ({how}) and will not be restarted "
                                   f"({process.restarts} restarts)")
    if process.crash_looping:
        return PluginState.ERROR, (f"crash-looping: exited {process.failure_streak} times in "
                                   "a row soon after starting, last "
                                   f"{describe_exit(process.last_returncode)}")
    if process.state in (ProcessState.STOPPED, ProcessState.TRACING_STOP):
        return PluginState.ERROR, f"the process is {process.state.value} (SIGSTOP or a debugger)"
    return PluginState.OK, None



class ProcessManagerPlugin:
    """Owns one :class:`ProcessManager` (``.manager``), usable by other plugins from construction.

    At init every template in ``template-path`` is loaded (an invalid file is
    logged with its name and skipped, see ``template_errors``) and those with
    ``run_on_startup`` are started.
    """

    name = "process-manager"

    def __init__(self, config: ProcessManagerConfig | None = None,
                 statuscheck: StatusWriter | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.config = config or ProcessManagerConfig()
        self.deps = deps_among(statuscheck)
        self._statuscheck = statuscheck
        self._registry = registry
        self._collector: Any = None
        self._health_names: list[str] = []
        self._children_before: frozenset[int] = frozenset()
        self.template_errors: list[TemplateError] = []
        self.manager = ProcessManager(
            template_path=self.config.template_path or None,
            status_interval=self.config.status_interval,
            reap_zombies=self._reap_zombies(),
            reap_interval=self.config.reap_interval,
        )

    def _reap_zombies(self) -> bool:
        mode = self.config.reap_zombies
        if mode == "auto":
            return os.getpid() == 1 or self.config.subreaper or is_child_subreaper()
        return mode == "always"

    async def init(self) -> None:
        if self.config.subreaper:
            # Children the host already had (a library user's own servers) were not
            # adopted: the stop of the orphans at close leaves them alone.
            self._children_before = frozenset(child_pids())
            set_child_subreaper(True)
        if self._statuscheck is not None:
            self._statuscheck.register(self.name)
        if self._registry is not None and self._collector is None:
            from .metrics import ProcessCollector  # prometheus_client only with metrics on

            self._collector = ProcessCollector(self.manager.get_all_processes)
            self._registry.register(self._collector)
        await self.manager.start()
        if self.manager.reaper is not None:
            log.info("reaping orphaned zombies (pid %d%s)", os.getpid(),
                     ", child subreaper" if self.config.subreaper else "")
        if self.manager.template_path is not None:
            await self._start_templates()
        if self._statuscheck is not None:
            self._statuscheck.report_state_change(self.name, PluginState.OK)

    async def _start_templates(self) -> None:
        store_path = self.manager.template_path
        assert store_path is not None
        await asyncio.to_thread(store_path.mkdir, parents=True, exist_ok=True)
        templates, self.template_errors = await self.manager.load_templates()
        started = 0
        for template in templates:
            try:
                process = await self.manager.new_process_from_template(template)
            except (TemplateError, ValueError) as exc:
                log.error("process template %s: %s", template.name, exc)  # noqa: TRY400
                continue
            if not template.run_on_startup:
                continue
            if self.config.health_check and self._statuscheck is not None:
                check = f"{HEALTH_PREFIX}{template.name}"
                self._statuscheck.register(check, probe=self._probe(process),
                                            groups=(READINESS,))
                self._health_names.append(check)
            try:
                await process.start()
                started += 1
            except ProcessStartError as exc:
                log.error("%s", exc)  # noqa: TRY400 - one line says it all
        log.info("process templates in %s: %d loaded, %d started, %d invalid", store_path,
                 len(templates), started, len(self.template_errors))

    def _probe(self, process: Process) -> Any:
        async def probe() -> tuple[PluginState, str | None]:
            if process.never_started:
                return PluginState.ERROR, "the process could not be started"
            return process_health(process)
        return probe

    async def after_init(self) -> None:
        pass

    async def close(self) -> None:
        try:
            await self.manager.close()
            if self.config.subreaper:
                # What the programs left behind was adopted by us: it goes with us.
                await stop_orphans(ORPHAN_GRACE, self._children_before)
        finally:
            if self._statuscheck is not None:
                for check in self._health_names:
                    self._statuscheck.unregister(check)
            self._health_names.clear()
            if self._collector is not None and self._registry is not None:
                self._registry.unregister(self._collector)
                self._collector = None

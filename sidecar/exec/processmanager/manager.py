"""The process manager: creates, attaches to, finds and deletes processes; reads templates."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from .errors import ProcessExistsError, ProcessManagerError, ProcessNotFoundError, TemplateError
from .events import DEFAULT_BUFFER, Fanout, ProcessEvent, Subscription
from .options import LinePrefix, Option, build_options
from .process import Process
from .reaper import DEFAULT_REAP_INTERVAL, ZombieReaper
from .templates import Template, TemplateStore
from .watcher import DEFAULT_STATUS_INTERVAL, StatusWatcher

log = logging.getLogger("sidecar.exec.processmanager")


class ProcessManager:
    """Manages named processes; use ``async with ProcessManager() as manager:`` or ``close()``.

    On close, the processes it started are stopped (stop signal, SIGKILL after
    their stop timeout) unless they are detached; attached processes are left
    running. ``reap_zombies`` also reaps zombies that nobody waits for (see
    :mod:`.reaper`): turn it on when the sidecar is PID 1 or a subreaper.
    """

    def __init__(self, *, template_path: str | os.PathLike[str] | None = None,
                 status_interval: float = DEFAULT_STATUS_INTERVAL,
                 reap_zombies: bool = False,
                 reap_interval: float = DEFAULT_REAP_INTERVAL) -> None:
        self._processes: dict[str, Process] = {}
        self._watcher = StatusWatcher(status_interval)
        self._reaper = ZombieReaper(reap_interval) if reap_zombies else None
        self._store = TemplateStore(template_path) if template_path else None
        self._fanout = Fanout()
        self._closing = False
        self._closed = False

    # -- ProcessOwner --------------------------------------------------------
    @property
    def closing(self) -> bool:
        return self._closing

    def process_event(self, event: ProcessEvent) -> None:
        self._fanout.emit(event)

    def watch(self, process: Process) -> None:
        if not self._closed:
            self._watcher.add(process)

    def unwatch(self, process: Process) -> None:
        self._watcher.remove(process)

    # -- lifecycle -----------------------------------------------------------
    @property
    def status_interval(self) -> float:
        return self._watcher.interval

    @property
    def reaper(self) -> ZombieReaper | None:
        return self._reaper

    @property
    def template_path(self) -> Path | None:
        return self._store.path if self._store is not None else None

    async def start(self) -> None:
        """Start the background watcher (and reaper); creating a process does it too."""
        self._check_open()
        self._watcher.start()
        if self._reaper is not None:
            self._reaper.start()

    async def close(self) -> None:
        """Stop the started, non-detached processes and release every process. Idempotent."""
        if self._closed:
            return
        self._closing = True
        processes = list(self._processes.values())
        owned = [p for p in processes
                 if p.is_alive() and not p.attached and not p.options.detach]
        try:
            if owned:
                log.info("stopping %d process(es): %s", len(owned),
                         ", ".join(p.name for p in owned))
                results = await asyncio.gather(*(p.stop_and_wait() for p in owned),
                                               return_exceptions=True)
                for process, result in zip(owned, results, strict=True):
                    if isinstance(result, Exception):
                        log.error("stopping process %s failed: %s", process.name, result)
        finally:
            # Also when close is cancelled (the agent's stop timeout): nothing we own survives.
            for process in owned:
                if process.is_alive():
                    process.signal(signal.SIGKILL, group=True)
            for process in processes:
                process.release()
            self._processes.clear()
            self._fanout.end()
            self._closed = True
            await self._watcher.close()
            if self._reaper is not None:
                await self._reaper.close()

    async def __aenter__(self) -> ProcessManager:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closing:
            raise ProcessManagerError("the process manager is closed")

    def _check_new_name(self, name: str) -> None:
        self._check_open()
        if not isinstance(name, str) or not name or "\0" in name:
            raise ValueError(f"a process name must be a non-empty string, got {name!r}")
        if name in self._processes:
            raise ProcessExistsError(name)

    # -- creating ------------------------------------------------------------
    async def new_process(self, name: str, cmd: str, *options: Option) -> Process:
        """A process named ``name`` that runs ``cmd``; not started yet (call ``start``)."""
        self._check_new_name(name)
        if not cmd:
            raise ValueError(f"process {name!r}: a command is required")
        opts = build_options(options)
        if opts.detach and any(_is_piped(t) for t in (opts.stdout, opts.stderr)):
            log.warning("process %s is detached but its output is read by the sidecar: "
                        "once the sidecar is gone, its writes will fail", name)
        process = Process(self, name, cmd, opts)
        self._processes[name] = process
        self._watcher.start()
        if opts.template:
            await self._write_template_of(process)
        return process

    async def new_process_from_template(self, template: Template) -> Process:
        """A process as the template describes it; not started yet."""
        self._check_new_name(template.name)
        process = Process(self, template.name, template.cmd, template.process_options())
        self._processes[template.name] = process
        self._watcher.start()
        return process

    async def attach_process(self, name: str, cmd: str, pid: int, *options: Option) -> Process:
        """Watch ``pid``, started elsewhere, under ``name``.

        With a ``cmd`` and ``Restarts``, a new process is started from ``cmd``
        when the attached one exits. Raises AttachError when ``pid`` is not there.
        """
        self._check_new_name(name)
        opts = build_options(options)
        process = Process(self, name, cmd, opts)
        process.attach(pid)
        self._processes[name] = process
        if opts.template:
            await self._write_template_of(process)
        return process

    # -- finding -------------------------------------------------------------
    def get_process(self, name: str) -> Process | None:
        return self._processes.get(name)

    def get_process_by_pid(self, pid: int) -> Process | None:
        return next((p for p in self._processes.values() if p.pid == pid), None)

    def get_all_processes(self) -> list[Process]:
        return list(self._processes.values())

    def __contains__(self, name: object) -> bool:
        return name in self._processes

    def __len__(self) -> int:
        return len(self._processes)

    async def delete(self, name: str, *, stop: bool = False) -> None:
        """Forget a process; it keeps running unless ``stop`` (then stop_and_wait first).

        A process left running can be attached again; output it sends through
        the sidecar (a callback or prefix writer) is no longer read.
        """
        process = self._processes.get(name)
        if process is None:
            raise ProcessNotFoundError(f"named {name!r}")
        try:
            if stop:
                await process.stop_and_wait()
        finally:
            if self._processes.get(name) is process:
                del self._processes[name]
            process.release()

    # -- notifications -------------------------------------------------------
    def subscribe(self, maxsize: int = DEFAULT_BUFFER) -> Subscription:
        """An async iterator of the events of every process (each names its process)."""
        return self._fanout.subscribe(maxsize)

    def add_listener(self, listener: Callable[[ProcessEvent], None]) -> None:
        """Call ``listener`` (in the event loop; keep it cheap) for every event of every process."""
        self._fanout.add_listener(listener)

    def remove_listener(self, listener: Callable[[ProcessEvent], None]) -> None:
        self._fanout.remove_listener(listener)

    # -- templates -----------------------------------------------------------
    def _require_store(self, what: str) -> TemplateStore:
        if self._store is None:
            raise TemplateError("", f"cannot {what}: no template path is configured")
        return self._store

    async def get_template(self, name: str) -> Template | None:
        """The template called ``name`` in the template path, or None."""
        store = self._require_store(f"read template {name!r}")
        return await asyncio.to_thread(store.get, name)

    async def get_all_templates(self) -> list[Template]:
        """Every valid template in the template path (invalid files are logged and skipped)."""
        templates, _ = await self.load_templates()
        return templates

    async def load_templates(self) -> tuple[list[Template], list[TemplateError]]:
        """Every valid template and an error per invalid file (each naming its file)."""
        store = self._require_store("read templates")
        templates, errors = await asyncio.to_thread(store.load)
        for error in errors:
            log.error("skipping process template %s", error)
        return templates, errors

    async def write_template(self, template: Template) -> Path:
        store = self._require_store(f"write template {template.name!r}")
        path = await asyncio.to_thread(store.write, template)
        log.debug("process template %s written to %s", template.name, path)
        return path

    async def _write_template_of(self, process: Process) -> None:
        # As in cn-infra: a template that cannot be written costs the template, not the process.
        try:
            await self.write_template(Template.from_process(process.name, process.command,
                                                            process.options))
        except (TemplateError, OSError) as exc:
            log.error("process %s: template not written: %s", process.name, exc)  # noqa: TRY400


def _is_piped(target: object) -> bool:
    if target is None or isinstance(target, int | str | os.PathLike):
        return False
    if isinstance(target, LinePrefix):
        return True
    fileno = getattr(target, "fileno", None)
    if fileno is None:
        return True
    try:
        fileno()
    except (OSError, ValueError):
        return True
    return False

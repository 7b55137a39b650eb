"""processmanager: start, attach to, watch and restart processes; templates.

The seed's ProcessManager API, asyncio-first::

    from sidecar.exec.processmanager import Args, ProcessManager, Restarts

    async with ProcessManager() as manager:
        web = await manager.new_process("web", "/usr/bin/web", Args("--port", "8080"),
                                        Restarts(-1))
        await web.start()
        async for event in web.notifications():
            print(event.name, event.label, event.pid)

How it works: a child's exit wakes the event loop through its pidfd, so a
restart starts within milliseconds; one watcher task reads every process's
state each ``status_interval``; children get their own process group and a
parent-death signal unless detached; unclaimed zombies are reaped when the
sidecar is PID 1 (see :mod:`.reaper`).
"""

from ._spawn import is_child_subreaper, set_child_subreaper
from .config import ProcessManagerConfig
from .errors import (
    AttachError,
    ProcessExistsError,
    ProcessManagerError,
    ProcessNotFoundError,
    ProcessNotRunningError,
    ProcessStartError,
    TemplateError,
)
from .events import EventKind, ProcessEvent, Subscription
from .manager import ProcessManager
from .options import (
    ALWAYS,
    DEFAULT_STOP_TIMEOUT,
    DEVNULL,
    NO_BACKOFF,
    Args,
    AsTemplate,
    AutoTerminate,
    Backoff,
    CPUAffinity,
    Detach,
    EnvVar,
    LinePrefix,
    LineSink,
    Notify,
    Option,
    OutputTarget,
    ProcessOptions,
    Restarts,
    StopSignal,
    WorkingDir,
    Writer,
    parse_signal,
)
from .plugin import HEALTH_PREFIX, ProcessManagerPlugin, process_health
from .process import Process
from .reaper import ZombieReaper
from .status import (
    IdSet,
    ProcessState,
    ProcessStatus,
    describe_exit,
    parse_status,
    read_status,
    signals_in,
)
from .templates import Template, TemplateOptions, TemplateStore

__all__ = [
    "ALWAYS",
    "DEFAULT_STOP_TIMEOUT",
    "DEVNULL",
    "HEALTH_PREFIX",
    "NO_BACKOFF",
    "Args",
    "AsTemplate",
    "AttachError",
    "AutoTerminate",
    "Backoff",
    "CPUAffinity",
    "Detach",
    "EnvVar",
    "EventKind",
    "IdSet",
    "LinePrefix",
    "LineSink",
    "Notify",
    "Option",
    "OutputTarget",
    "Process",
    "ProcessEvent",
    "ProcessExistsError",
    "ProcessManager",
    "ProcessManagerConfig",
    "ProcessManagerError",
    "ProcessManagerPlugin",
    "ProcessNotFoundError",
    "ProcessNotRunningError",
    "ProcessOptions",
    "ProcessStartError",
    "ProcessState",
    "ProcessStatus",
    "Restarts",
    "StopSignal",
    "Subscription",
    "Template",
    "TemplateError",
    "TemplateOptions",
    "TemplateStore",
    "WorkingDir",
    "Writer",
    "ZombieReaper",
    "describe_exit",
    "is_child_subreaper",
    "parse_signal",
    "parse_status",
    "process_health",
    "read_status",
    "set_child_subreaper",
    "signals_in",
]

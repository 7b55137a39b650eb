"""supervisor: the programs and hooks of ``supervisor.conf``, hot-reloaded.

A process manager extension (the seed's words): programs are processes of a
:class:`~sidecar.exec.processmanager.ProcessManager`, hooks are commands run
for every program event with only the ``SUPERVISOR_*`` variables set::

    from sidecar.exec.supervisor import Supervisor, parse_supervisor_config

    supervisor = Supervisor(parse_supervisor_config(text, "supervisor.conf"))
    supervisor.add_listener(lambda event: print(event.program, event.state))
    await supervisor.init()
    result = await supervisor.reload_text(new_text, "configmap demo/programs")
    print(result.started, result.stopped, result.restarted, result.unchanged)
    await supervisor.close()

In the sidecar, ``supervisor.conf`` turns the plugin on (see docs/concepts/supervisor.md);
the file is watched and changes are applied live.
"""

from .api import (
    BACKOFF,
    FAILED,
    GAVE_UP,
    HOOK_STATES,
    HOOK_VARIABLES,
    PROCESS_STATUS,
    STARTED,
    TERMINATED,
    ProgramEvent,
    ProgramListener,
)
from .config import (
    DEFAULT_HOOK_BACKLOG,
    DEFAULT_HOOK_CONCURRENCY,
    DEFAULT_HOOK_TIMEOUT,
    DEFAULT_WATCH_INTERVAL,
    HookConfig,
    ProgramConfig,
    SupervisorConfig,
    parse_supervisor_config,
    program_name_of,
    read_config_file,
)
from .errors import ProgramNotFoundError, ProgramStartError, SupervisorError
from .hooks import HOOK_KILL_GRACE, HookRunner, HookStats
from .plugin import Supervisor, SupervisorPlugin
from .programs import CHECK_PREFIX
from .results import STOP_MARGIN, ReloadResult, ReloadStats, StopBudget

__all__ = [
    "BACKOFF",
    "CHECK_PREFIX",
    "DEFAULT_HOOK_BACKLOG",
    "DEFAULT_HOOK_CONCURRENCY",
    "DEFAULT_HOOK_TIMEOUT",
    "DEFAULT_WATCH_INTERVAL",
    "FAILED",
    "GAVE_UP",
    "HOOK_KILL_GRACE",
    "HOOK_STATES",
    "HOOK_VARIABLES",
    "PROCESS_STATUS",
    "STARTED",
    "STOP_MARGIN",
    "TERMINATED",
    "HookConfig",
    "HookRunner",
    "HookStats",
    "ProgramConfig",
    "ProgramEvent",
    "ProgramListener",
    "ProgramNotFoundError",
    "ProgramStartError",
    "ReloadResult",
    "ReloadStats",
    "StopBudget",
    "Supervisor",
    "SupervisorConfig",
    "SupervisorError",
    "SupervisorPlugin",
    "parse_supervisor_config",
    "program_name_of",
    "read_config_file",
]

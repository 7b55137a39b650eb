"""``supervisor.conf``: the programs to run and the hooks to call on their events.

The seed's keys (``name``, ``executable-path``, ``executable-args``,
``logfile-path``, ``restarts``; hooks ``cmd``, ``cmd-args``), cn-infra's cpu
affinity keys, and what supervisord users expect besides (``env``,
``working-dir``, ``stop-signal``, ``stop-timeout``, backoff, ``autostart``,
hook filters)::

    programs:
      - name: web
        executable-path: /usr/bin/web
        executable-args: ["--port", "8080"]
        logfile-path: /var/log/web.log
        restarts: -1
    hooks:
      - cmd: /usr/local/bin/notify
        cmd-args: ["--channel", "ops"]
        states: [terminated]
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

from sidecar.config import (
    DURATION,
    ConfigFileError,
    ConfigValueError,
    YamlError,
    combine_errors,
    decode,
    parse_yaml,
)
from sidecar.exec.processmanager import (
    ALWAYS,
    DEFAULT_STOP_TIMEOUT,
    Backoff,
    CPUAffinity,
    ProcessOptions,
    parse_signal,
)
from sidecar.logging.output import ProgramOutput

from .api import HOOK_STATES
from .output import OutputLog

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]{0,127}$")
DEFAULT_HOOK_TIMEOUT = 10.0
DEFAULT_HOOK_CONCURRENCY = 8
DEFAULT_HOOK_BACKLOG = 100
DEFAULT_WATCH_INTERVAL = 1.0


def program_name_of(executable: str) -> str:
    """cn-infra's rule: the executable's file name without its extension."""
    return Path(executable.rstrip("/")).stem


@dataclass(frozen=True, kw_only=True)
class ProgramConfig:
    """One program; only ``executable-path`` is required."""

    #: Path of the executable (a bare name is looked up on the program's PATH).
    executable_path: str
    #: Unique; the executable's file name without extension when left out.
    name: str = ""
    #: Its arguments, one list item each (no shell splits them).
    executable_args: tuple[str, ...] = ()
    #: stdout and stderr are appended to this file (created with its directory if
    #: missing); without one they go to the sidecar's stdout behind ``[name] ``.
    logfile_path: str = ""
    #: Automatic restarts after the program exits on its own: 0 none, N at most N, -1 always.
    restarts: int = 0
    #: Added to (or replacing entries of) the sidecar's environment.
    env: dict[str, str] = field(default_factory=dict)
    #: The directory it starts in (default: the sidecar's).
    working_dir: str = ""
    #: Sent first on stop, restart and shutdown; SIGKILL follows after ``stop-timeout``.
    stop_signal: str = "SIGTERM"
    #: How long after the stop signal SIGKILL follows.
    stop_timeout: Annotated[float, DURATION] = DEFAULT_STOP_TIMEOUT
    #: Waits between restarts of a crash-looping program: ``base``, times ``factor``
    #: per fast exit, at most ``cap``; a run longer than ``reset-after`` starts over.
    backoff_base: Annotated[float, DURATION] = 0.1
    #: The longest wait between two restarts.
    backoff_cap: Annotated[float, DURATION] = 30.0
    #: What each fast exit multiplies the wait by (at least 1).
    backoff_factor: float = 2.0
    #: A run at least this long counts as a success: the next wait is ``backoff-base``.
    backoff_reset_after: Annotated[float, DURATION] = 10.0
    #: Start with the supervisor (false: only when asked over REST or the CLI).
    autostart: bool = True
    #: Report to the status check as ``program:<name>``.
    health_check: bool = True
    #: A crash loop or a program that gave up also fails liveness (the kubelet then
    #: restarts the sidecar's container), not only readiness.
    fatal: bool = False
    #: cn-infra: pin the program to cpus, as taskset's hex mask or list (``0-2,6``).
    cpu_affinity_mask: str = ""
    #: The cpus as a list (``0-2,6``); give this or ``cpu-affinity-mask``.
    cpu_affinity_list: str = ""
    #: How long after the start the affinity is set (cn-infra's setup delay).
    cpu_affinity_setup_delay: Annotated[float, DURATION] = 0.0

    def __post_init__(self) -> None:
        if not self.executable_path.strip():
            raise ValueError("executable-path: must not be empty")
        name = self.name or program_name_of(self.executable_path)
        if not _NAME.match(name):
            where = "name" if self.name else "name (from executable-path)"
            raise ValueError(f"{where}: {name!r} is not a valid program name (letters, digits "
                             "and _.@+- only, not starting with a punctuation mark, "
                             "at most 128 characters)")
        object.__setattr__(self, "name", name)
        if self.restarts < ALWAYS:
            raise ValueError(f"restarts: -1 (always), 0 or a positive count, got {self.restarts}")
        try:
            parse_signal(self.stop_signal)
        except ValueError as exc:
            raise ValueError(f"stop-signal: {exc}; use a name such as SIGTERM or SIGINT") \
                from None
        for key in ("stop_timeout", "backoff_base", "backoff_cap", "backoff_reset_after",
                    "cpu_affinity_setup_delay"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key.replace('_', '-')}: must not be negative")
        if self.backoff_factor < 1:
            raise ValueError(f"backoff-factor: must be at least 1, got {self.backoff_factor}")
        for key, value in self.env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise ValueError(f"env: {key!r} is not a valid variable name")
        if self.cpu_affinity_mask and self.cpu_affinity_list:
            raise ValueError("cpu-affinity-mask and cpu-affinity-list: give one, not both")
        try:
            self.cpu_affinity()
        except ValueError as exc:
            key = "cpu-affinity-mask" if self.cpu_affinity_mask else "cpu-affinity-list"
            raise ValueError(f"{key}: {exc}") from None

    @property
    def signal(self) -> signal.Signals:
        return parse_signal(self.stop_signal)

    @property
    def backoff(self) -> Backoff:
        return Backoff(base=self.backoff_base, cap=self.backoff_cap,
                       factor=self.backoff_factor, reset_after=self.backoff_reset_after)

    def cpu_affinity(self) -> frozenset[int] | None:
        if self.cpu_affinity_list:
            return CPUAffinity(self.cpu_affinity_list).cpus
        if self.cpu_affinity_mask:
            mask = self.cpu_affinity_mask
            return CPUAffinity(mask if mask.lower().startswith("0x") else f"0x{mask}").cpus
        return None

    def process_options(self, base_env: dict[str, str] | None = None,
                        output_log: OutputLog | None = None) -> ProcessOptions:
        """How the process manager runs it; ``base_env`` defaults to the sidecar's environment.
        Without a logfile its output goes to the sidecar's stdout, and to ``output_log``."""
        output: str | ProgramOutput = self.logfile_path or (
            output_log.program_output(self.name) if output_log is not None
            else ProgramOutput(self.name))
        env = None
        if self.env:
            env = {**(os.environ if base_env is None else base_env), **self.env}
        elif base_env is not None:
            env = dict(base_env)
        return ProcessOptions(
            args=self.executable_args, restarts=self.restarts, backoff=self.backoff,
            stdout=output, stderr=output, env=env, working_dir=self.working_dir or None,
            stop_signal=self.signal, stop_timeout=self.stop_timeout,
            cpu_affinity=self.cpu_affinity(), cpu_affinity_delay=self.cpu_affinity_setup_delay)

    def same_process(self, other: ProgramConfig) -> bool:
        """Equal but for the keys that only change how it is reported (no restart needed)."""
        return replace(self, health_check=other.health_check, fatal=other.fatal) == other


@dataclass(frozen=True, kw_only=True)
class HookConfig:
    """A command called for program events, with only the ``SUPERVISOR_*`` variables set."""

    #: An absolute path: hooks run without PATH. A bare name is looked up on the
    #: sidecar's PATH when the file is read.
    cmd: str
    #: Its arguments, one list item each.
    cmd_args: tuple[str, ...] = ()
    #: Shown in logs and metrics; the command's file name when left out.
    name: str = ""
    #: Only for these programs (default: every program).
    programs: tuple[str, ...] = ()
    #: Only for these states: started, running, sleeping, idle, terminated, backoff,
    #: gave-up, failed, ... (default: every event).
    states: tuple[str, ...] = ()
    #: Longer runs are stopped (SIGTERM to its process group, SIGKILL 1 s later);
    #: default ``hook-timeout``.
    timeout: Annotated[float, DURATION] | None = None
    #: Append the hook's output here; without one it is logged (debug, and the last
    #: lines with a failure).
    logfile_path: str = ""

    def __post_init__(self) -> None:
        if not self.cmd.strip():
            raise ValueError("cmd: must not be empty")
        if not self.name:
            object.__setattr__(self, "name", Path(self.cmd.rstrip("/")).name or self.cmd)
        unknown = [s for s in self.states if s not in HOOK_STATES]
        if unknown:
            raise ValueError(f"states: {', '.join(map(repr, unknown))} is not a program state; "
                             f"valid: {', '.join(sorted(HOOK_STATES))}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError("timeout: must be greater than zero")

    def matches(self, program: str, state: str) -> bool:
        return ((not self.programs or program in self.programs)
                and (not self.states or state in self.states))


@dataclass(frozen=True, kw_only=True)
class SupervisorConfig:
    #: The programs to run; only ``executable-path`` is required.
    programs: tuple[ProgramConfig, ...] = ()
    #: Commands called for program events (every hook for every event unless filtered).
    hooks: tuple[HookConfig, ...] = ()
    #: Default longest run of a hook.
    hook_timeout: Annotated[float, DURATION] = DEFAULT_HOOK_TIMEOUT
    #: Hook processes running at once, over all programs.
    hook_concurrency: int = DEFAULT_HOOK_CONCURRENCY
    #: Events per program waiting for their hooks; beyond, the oldest are dropped (counted).
    hook_backlog: int = DEFAULT_HOOK_BACKLOG
    #: How often the file is checked for changes (the kubelet's ConfigMap updates
    #: included); 0 stops watching.
    watch_interval: Annotated[float, DURATION] = DEFAULT_WATCH_INTERVAL
    #: Where it came from (a file path, a ConfigMap): named in errors and in status.
    #: (Not a key: set by :func:`parse_supervisor_config`.)
    source: str = field(default="supervisor.conf", compare=False, init=False)

    def __post_init__(self) -> None:
        if self.hook_timeout <= 0:
            raise ValueError("hook-timeout: must be greater than zero")
        if self.hook_concurrency < 1:
            raise ValueError("hook-concurrency: must be at least 1")
        if self.hook_backlog < 1:
            raise ValueError("hook-backlog: must be at least 1")
        if self.watch_interval < 0:
            raise ValueError("watch-interval: must not be negative (0 stops watching)")

    @property
    def program_names(self) -> list[str]:
        return [p.name for p in self.programs]

    def program(self, name: str) -> ProgramConfig | None:
        return next((p for p in self.programs if p.name == name), None)

    def hook_timeout_of(self, hook: HookConfig) -> float:
        return hook.timeout if hook.timeout is not None else self.hook_timeout


def _yaml(text: str, source: str) -> Any:
    try:
        return parse_yaml(text)
    except YamlError as exc:
        raise ConfigFileError(source, f"invalid YAML: {exc}") from None


def parse_supervisor_config(text: str, source: str) -> SupervisorConfig:
    """Parse and check ``supervisor.conf`` text; ConfigError names ``source``, the key and why."""
    config = decode(SupervisorConfig, _yaml(text, source), source)
    object.__setattr__(config, "source", source)
    _check(config, source)
    return config


def _check(config: SupervisorConfig, source: str) -> None:
    errors: list[ConfigValueError] = []
    seen: dict[str, int] = {}
    for index, program in enumerate(config.programs):
        if program.name in seen:
            errors.append(ConfigValueError(
                source, f"programs[{index}].name",
                f"{program.name!r} is already the name of programs[{seen[program.name]}]; "
                "names must be unique (a name left out comes from executable-path)"))
            continue
        seen[program.name] = index
    for index, hook in enumerate(config.hooks):
        for name in hook.programs:
            if name not in seen:
                errors.append(ConfigValueError(
                    source, f"hooks[{index}].programs",
                    f"{name!r} is not a program of this file "
                    f"(programs: {', '.join(seen) or 'none'})"))
        if "/" not in hook.cmd and shutil.which(hook.cmd) is None:
            errors.append(ConfigValueError(
                source, f"hooks[{index}].cmd",
                f"{hook.cmd!r} is not on the sidecar's PATH; hooks run without PATH, "
                "so give an absolute path"))
    if errors:
        raise combine_errors(errors)


def resolve_command(cmd: str) -> str:
    """A bare hook command as found on the sidecar's PATH (as Go's exec.Command does)."""
    if "/" in cmd:
        return cmd
    return shutil.which(cmd) or cmd


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def read_config_file(path: str | os.PathLike[str]) -> tuple[str, SupervisorConfig]:
    """The text and the parsed config of a ``supervisor.conf`` file (ConfigError if bad)."""
    location = Path(path)
    try:
        text = location.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(location, "no such file") from None
    except OSError as exc:
        raise ConfigFileError(location, f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigFileError(location, "not UTF-8 text") from None
    return text, parse_supervisor_config(text, str(location))


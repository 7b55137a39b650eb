"""Process options: the seed's option functions (``Args``, ``Restarts``, ...) as objects.

Every option is applied in order to a :class:`ProcessOptions`; a
``ProcessOptions`` instance is itself an option that replaces them all, for
callers (such as the supervisor) that build options from a config file::

    await manager.new_process("web", "/usr/bin/web", Args("--port", "8080"), Restarts(-1))
    await manager.new_process("web", "/usr/bin/web", ProcessOptions(args=("--port", "8080")))
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import IO, TYPE_CHECKING, Protocol, TypeAlias, TypeGuard

if TYPE_CHECKING:
    from .events import ProcessEvent

#: ``restarts`` value meaning "restart whenever it exits".
ALWAYS = -1
DEFAULT_STOP_TIMEOUT = 5.0
#: Discard the output (``subprocess.DEVNULL``).
DEVNULL = subprocess.DEVNULL


@dataclass(frozen=True)
class LinePrefix:
    """Write each output line to ``stream`` (the sidecar's stdout when None) behind ``prefix``.

    The output passes through a pipe that the sidecar reads, so a process
    with this writer should not outlive the sidecar (see ``Detach``).
    """

    prefix: str
    stream: IO[str] | None = None

    def write_line(self, line: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(f"{self.prefix}{line}\n")
        stream.flush()


class LineSink(Protocol):
    """Gets a process's output line by line as bytes, told the stream (``stdout`` or
    ``stderr``) and the line's full length (a line over 64 KiB comes cut there).

    :class:`sidecar.logging.output.ProgramOutput` is one: a program's output as
    lines of the sidecar's own output, JSON in JSON mode, capped and rate-limited.
    """

    def write_output(self, stream: str, data: bytes, length: int) -> None: ...


def is_line_sink(target: object) -> TypeGuard[LineSink]:
    return callable(getattr(target, "write_output", None))


#: Where a process's stdout or stderr goes:
#: ``None`` the sidecar's own stream (inherited); ``DEVNULL`` nowhere; a path (``str`` or
#: ``os.PathLike``) a log file, created if missing and appended to; an ``int`` file
#: descriptor or a file object with a real ``fileno()``, passed to the process as it is;
#: a :class:`LineSink`, a text stream without a descriptor, a ``Callable[[str], None]`` or
#: a :class:`LinePrefix` gets the output line by line through a pipe (undecodable bytes
#: replaced; a line over 64 KiB cut there).
OutputTarget: TypeAlias = "int | str | os.PathLike[str] | IO[str] | IO[bytes] | LinePrefix | LineSink | Callable[[str], None] | None"  # noqa: E501

#: Where notifications go: an ``asyncio.Queue`` (the oldest event is dropped when it is
#: full, so a slow reader never blocks the watcher), a callback (called in the event loop;
#: keep it cheap), or True for a queue the process creates (``Process.notification_queue``).
NotifyTarget: TypeAlias = "asyncio.Queue[ProcessEvent] | Callable[[ProcessEvent], None] | bool | None"  # noqa: E501


@dataclass(frozen=True)
class Backoff:
    """Delays between automatic restarts of a crash-looping process.

    A process that exits after running at least ``reset_after`` seconds is
    restarted at once. Each further exit sooner than that waits ``base``,
    then ``base * factor``, ... up to ``cap`` seconds.
    """

    base: float = 0.1
    cap: float = 30.0
    factor: float = 2.0
    reset_after: float = 10.0

    def __post_init__(self) -> None:
        for name in ("base", "cap", "reset_after"):
            if getattr(self, name) < 0:
                raise ValueError(f"backoff {name} must not be negative, got {getattr(self, name)}")
        if self.factor < 1:
            raise ValueError(f"backoff factor must be at least 1, got {self.factor}")

    def delay(self, streak: int) -> float:
        """The wait before the restart that follows the ``streak``-th fast exit in a row."""
        if streak <= 1 or self.base == 0:
            return 0.0
        delay = self.base
        for _ in range(streak - 2):  # stepwise: a long crash loop must not overflow a float
            delay *= self.factor
            if delay >= self.cap:
                return float(self.cap)
        return float(min(delay, self.cap))


#: No waiting between restarts at all (benchmarks, tests).
NO_BACKOFF = Backoff(base=0.0, reset_after=0.0)


def normalise_env(env: Mapping[str, str] | Iterable[str] | None) -> dict[str, str] | None:
    """A mapping, or cn-infra's ``["KEY=value", ...]``, as a checked dict; None stays None."""
    if env is None:
        return None
    items: Iterable[tuple[str, str]]
    if isinstance(env, Mapping):
        items = env.items()
    else:
        pairs = []
        for entry in env:
            key, sep, value = str(entry).partition("=")
            if not sep:
                raise ValueError(f"environment entry {entry!r} is not KEY=value")
            pairs.append((key, value))
        items = pairs
    result: dict[str, str] = {}
    for key, value in items:
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"environment variable {key!r}: names and values must be strings")
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValueError(f"environment variable name {key!r} is not valid")
        result[key] = value
    return result


def parse_cpu_list(text: str) -> frozenset[int]:
    """``"0-2,6"`` (taskset's list) or ``"0x45"``/``"45"`` with a ``mask:`` prefix -> cpu set."""
    text = text.strip()
    if text.lower().startswith(("0x", "mask:")):
        mask = int(text.split(":", 1)[-1], 16)
        return frozenset(i for i in range(mask.bit_length()) if mask >> i & 1)
    cpus: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, sep, high = part.partition("-")
        if sep:
            if int(high) < int(low):
                raise ValueError(f"cpu range {part!r} is reversed")
            cpus.update(range(int(low), int(high) + 1))
        else:
            cpus.add(int(low))
    if not cpus:
        raise ValueError(f"cpu list {text!r} names no cpu")
    return frozenset(cpus)


def parse_signal(value: str | int) -> signal.Signals:
    """``"SIGINT"``, ``"int"``, ``"2"`` or ``2`` -> ``signal.SIGINT``; ValueError if not one."""
    if isinstance(value, int) or value.strip().isdigit():
        try:
            return signal.Signals(int(value))
        except ValueError:
            raise ValueError(f"{value!r} is not a signal") from None
    name = value.strip().upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return signal.Signals[name]
    except KeyError:
        raise ValueError(f"{value!r} is not a signal") from None


@dataclass(frozen=True)
class ProcessOptions:
    """Everything about how a process runs; every field is optional."""

    #: Arguments after the command.
    args: tuple[str, ...] = ()
    #: Automatic restarts after the process exits on its own: 0 none, N at most N, -1 always.
    restarts: int = 0
    backoff: Backoff = field(default_factory=Backoff)
    stdout: OutputTarget = None
    stderr: OutputTarget = None
    #: Outlive the sidecar: own session, no parent-death signal.
    detach: bool = False
    #: The exact environment of the process; None inherits the sidecar's.
    env: Mapping[str, str] | None = None
    working_dir: str | None = None
    #: Write the process as a template file (and whether it starts with the plugin).
    template: bool = False
    run_on_startup: bool = False
    notify: NotifyTarget = None
    #: Reap the process when it turns zombie (an attached child of the sidecar).
    auto_terminate: bool = False
    stop_signal: signal.Signals = signal.SIGTERM
    #: How long stop_and_wait, restart and close wait before SIGKILL.
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    #: Sent to the process when the sidecar (its parent thread) dies; ignored with ``detach``.
    parent_death_signal: signal.Signals = signal.SIGKILL
    cpu_affinity: frozenset[int] | None = None
    cpu_affinity_delay: float = 0.0
    #: Log an exit nobody asked for at debug level, not info: for short-lived helper
    #: commands (such as supervisor hooks) whose exits are expected and counted elsewhere.
    quiet_exit: bool = False

    def __post_init__(self) -> None:
        args: object = self.args
        if isinstance(args, str) or not all(isinstance(a, str) for a in self.args):
            raise ValueError("args must be a sequence of strings")
        object.__setattr__(self, "args", tuple(self.args))
        if not isinstance(self.restarts, int) or self.restarts < ALWAYS:
            raise ValueError(f"restarts must be -1 (always), 0 or a positive count, "
                             f"got {self.restarts!r}")
        if self.stop_timeout < 0:
            raise ValueError(f"stop_timeout must not be negative, got {self.stop_timeout}")
        if self.cpu_affinity_delay < 0:
            raise ValueError("cpu_affinity_delay must not be negative")
        for name in ("stop_signal", "parent_death_signal"):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, signal.Signals(value))
            except ValueError:
                raise ValueError(f"{name} {value!r} is not a signal") from None
        object.__setattr__(self, "env", normalise_env(self.env))
        if self.cpu_affinity is not None:
            cpus = frozenset(self.cpu_affinity)
            if not cpus or any(c < 0 for c in cpus):
                raise ValueError("cpu_affinity must name at least one cpu, none negative")
            object.__setattr__(self, "cpu_affinity", cpus)

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        return self


class Option(Protocol):
    """Anything that turns one ProcessOptions into another."""

    def apply(self, options: ProcessOptions) -> ProcessOptions: ...


def build_options(options: Iterable[Option]) -> ProcessOptions:
    result = ProcessOptions()
    for option in options:
        if not hasattr(option, "apply"):
            raise TypeError(f"{option!r} is not a process option")
        result = option.apply(result)
    return result


class Args:
    """Start the process with these arguments."""

    def __init__(self, *args: str) -> None:
        self.args = tuple(args)

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        return replace(options, args=self.args)


class Restarts:
    """Restart automatically up to ``count`` times (-1: always), waiting as ``backoff`` says."""

    def __init__(self, count: int, backoff: Backoff | None = None) -> None:
        self.count = count
        self.backoff = backoff

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        if self.backoff is None:
            return replace(options, restarts=self.count)
        return replace(options, restarts=self.count, backoff=self.backoff)


class Writer:
    """Where stdout and stderr go (see :data:`OutputTarget`); None keeps the sidecar's."""

    def __init__(self, stdout: OutputTarget = None, stderr: OutputTarget = None) -> None:
        self.stdout = stdout
        self.stderr = stderr

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        return replace(options, stdout=self.stdout, stderr=self.stderr)


class Detach:
    """The process outlives the sidecar: its own session, no parent-death signal."""

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        return replace(options, detach=True)


class EnvVar:
    """Exactly this environment: a mapping or ``["KEY=value", ...]`` (``os.environ`` for all)."""

    def __init__(self, env: Mapping[str, str] | Iterable[str]) -> None:
        self.env = normalise_env(env)

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        return replace(options, env=self.env)


class AsTemplate:
    """The seed's Template option: write the process as a template file in the template path.

    ``run_on_startup``: the plugin starts it at init.
    """

    def __init__(self, run_on_startup: bool = False) -> None:
        self.run_on_startup = run_on_startup

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        return replace(options, template=True, run_on_startup=self.run_on_startup)


class Notify:
    """Send every status change to ``target`` (see :data:`NotifyTarget`); None creates a queue."""

    def __init__(self, target: NotifyTarget = None) -> None:
        self.target = True if target is None else target

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        return replace(options, notify=self.target)


class AutoTerminate:
    """Reap the process as soon as it turns zombie (for attached children of the sidecar)."""

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        return replace(options, auto_terminate=True)


class WorkingDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        return replace(options, working_dir=self.path)


class StopSignal:
    """Stop with ``signum`` (instead of SIGTERM), then SIGKILL after ``timeout`` seconds."""

    def __init__(self, signum: int, timeout: float | None = None) -> None:
        self.signum = signal.Signals(signum)
        self.timeout = timeout

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        if self.timeout is None:
            return replace(options, stop_signal=self.signum)
        return replace(options, stop_signal=self.signum, stop_timeout=self.timeout)


class CPUAffinity:
    """Pin the process to cpus: a set, or taskset's ``"0-2,6"`` or ``"0x45"``; after ``delay``."""

    def __init__(self, cpus: Iterable[int] | str, delay: float = 0.0) -> None:
        self.cpus = parse_cpu_list(cpus) if isinstance(cpus, str) else frozenset(cpus)
        self.delay = delay

    def apply(self, options: ProcessOptions) -> ProcessOptions:
        return replace(options, cpu_affinity=self.cpus, cpu_affinity_delay=self.delay)

"""Starting a child: its output, its parent-death signal and its process group.

Children are started with ``subprocess.Popen`` from the event loop's thread,
because the kernel sends the parent-death signal when the *thread* that forked
the child exits, and the loop's thread lives as long as the sidecar does.
``prctl(PR_SET_PDEATHSIG)`` needs a ``preexec_fn``: it calls one libc function
(resolved before the fork, so the child runs no import and no lookup), and
glibc keeps malloc usable after fork, so the usual preexec_fn deadlock in a
threaded parent does not apply to it. Detached children need no preexec_fn
and are started through vfork.

A preexec_fn makes ``_posixsubprocess`` call fork() instead of vfork(), and
fork() runs every ``pthread_atfork`` handler of the process, in the child too.
A library's handler can kill the child before it reaches exec: gRPC's did
(SIGSEGV or SIGABRT while other threads were inside gRPC), so the etcd plugin
imports gRPC with them off (``sidecar/kvstore/etcd/_grpc.py``).

A signal the sidecar's process ignores stays ignored through exec: started
in the background by a shell, or by ``nohup``, every program would ignore
SIGINT or SIGHUP, and a stop-signal of SIGINT would end in SIGKILL. Such
signals are reset to their default in the child (in the same preexec_fn),
as init systems do.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from .options import LinePrefix, OutputTarget, is_line_sink
from .status import ProcessState, all_stat_lines

log = logging.getLogger("sidecar.exec.processmanager")

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
#: A line longer than this is cut there (its sink is told its full length); the rest of
#: it is read and skipped, never kept.
MAX_LINE = 64 * 1024

#: Gets each line read from a pipe (without its newline) and the line's full length.
RawSink = Callable[[bytes, int], None]


@cache
def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


@cache
def _prctl() -> Any:
    """libc's prctl with integer arguments; None where there is none."""
    libc = _libc()
    try:
        function = libc["prctl"] if libc is not None else None
    except AttributeError:
        return None
    if function is not None:
        function.restype = ctypes.c_int
        function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                             ctypes.c_ulong]
    return function


@cache
def _libc_signal() -> Any:
    """libc's signal(); None where there is none."""
    libc = _libc()
    try:
        function = libc["signal"] if libc is not None else None
    except AttributeError:
        return None
    if function is not None:
        function.restype = ctypes.c_void_p
        function.argtypes = [ctypes.c_int, ctypes.c_void_p]
    return function


#: Popen's restore_signals already gives these back their default.
_RESTORED_BY_POPEN = frozenset(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name))


def ignored_signals() -> tuple[int, ...]:
    """The signals this process ignores that a child would otherwise inherit ignored."""
    found = []
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP) or signum in _RESTORED_BY_POPEN:
            continue
        try:
            if signal.getsignal(signum) is signal.SIG_IGN:
                found.append(int(signum))
        except (ValueError, OSError):
            continue
    return tuple(found)


def child_preexec(death_signal: int | None) -> Callable[[], None] | None:
    """A preexec_fn: default dispositions for ignored signals and, with ``death_signal``,
    that signal when this thread dies. None when the child needs neither."""
    reset = ignored_signals()
    libc_signal = _libc_signal() if reset else None
    prctl = _prctl() if death_signal is not None else None
    if death_signal is not None and prctl is None:
        log.warning("prctl is not available: children will not die with the sidecar")
    if libc_signal is None and prctl is None:
        return None
    parent = os.getpid()
    number = int(death_signal or 0)

    def preexec() -> None:
        if libc_signal is not None:
            for signum in reset:
                libc_signal(signum, None)  # SIG_DFL
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, number, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os.kill(os.getpid(), number)

    return preexec


def set_child_subreaper(enabled: bool = True) -> bool:
    """Make orphaned descendants re-parent to this process (as they would to PID 1)."""
    prctl = _prctl()
    if prctl is None:
        return False
    if prctl(_PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0) != 0:
        log.warning("cannot become a child subreaper: %s", os.strerror(ctypes.get_errno()))
        return False
    return True


def is_child_subreaper() -> bool:
    libc = _libc()
    if libc is None or _prctl() is None:
        return False
    getter = libc["prctl"]  # a separate function object: this call passes a pointer
    getter.restype = ctypes.c_int
    value = ctypes.c_int(0)
    result = getter(_PR_GET_CHILD_SUBREAPER, ctypes.byref(value), 0, 0, 0)
    return bool(result == 0 and value.value != 0)


@dataclass
class StreamPlan:
    """How one output stream is wired: what Popen gets, and what the sidecar reads."""

    popen_arg: int | None = None
    sink: RawSink | None = None
    read_fd: int | None = None
    close_after_spawn: list[int] = field(default_factory=list)

    def discard(self) -> None:
        """The spawn failed: close everything opened for it."""
        for fd in self.close_after_spawn:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.close_after_spawn.clear()
        if self.read_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.read_fd)
            self.read_fd = None


def plan_stream(target: OutputTarget, stream: str = "stdout") -> StreamPlan:
    """Resolve a writer option for ``stream`` (stdout or stderr); opens log files and
    pipes (closed by the caller)."""
    if target is None:
        return StreamPlan()
    if isinstance(target, bool):
        raise TypeError("a writer is a path, a file, a stream or a callable, not a bool")
    if isinstance(target, int):
        return StreamPlan(popen_arg=target)
    if isinstance(target, str | os.PathLike):
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        return StreamPlan(popen_arg=fd, close_after_spawn=[fd])
    if isinstance(target, LinePrefix):
        return _pipe(_text_sink(target.write_line))
    if is_line_sink(target):
        write_output = target.write_output

        def to_sink(line: bytes, length: int) -> None:
            write_output(stream, line, length)
        return _pipe(to_sink)
    fileno = getattr(target, "fileno", None)
    if fileno is not None:
        try:
            return StreamPlan(popen_arg=int(fileno()))
        except (OSError, ValueError):  # io.UnsupportedOperation: a stream without a descriptor
            pass
    write = getattr(target, "write", None)
    if write is not None:
        def write_line(line: str) -> None:
            write(line + "\n")
        return _pipe(_text_sink(write_line))
    if callable(target):
        return _pipe(_text_sink(target))
    raise TypeError(f"cannot write process output to {target!r}")


def _text_sink(sink: Callable[[str], None]) -> RawSink:
    def decoded(line: bytes, length: int) -> None:
        sink(line.decode("utf-8", "replace"))
    return decoded


def _pipe(sink: RawSink) -> StreamPlan:
    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(read_fd, False)
    return StreamPlan(popen_arg=write_fd, sink=sink, read_fd=read_fd,
                      close_after_spawn=[write_fd])


class PipeReader:
    """Reads a child's pipe in the event loop and hands each line to a sink (no task needed).

    A line over :data:`MAX_LINE` bytes is passed on cut there, with its full length,
    once its newline comes; what lies between is skipped as it is read, so a line
    without end costs no memory.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, sink: RawSink,
                 what: str) -> None:
        self._loop = loop
        self._fd: int | None = fd
        self._sink = sink
        self._what = what
        self._buffer = b""
        #: While a long line is skipped: its full length so far (its head is the buffer).
        self._skipped: int | None = None
        self._failed = False
        loop.add_reader(fd, self._readable)

    @property
    def open(self) -> bool:
        return self._fd is not None

    def _readable(self) -> None:
        if self._fd is None:
            return
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EINTR:
                self.close()
            return
        if not data:
            self.close()
            return
        if self._skipped is not None:
            end = data.find(b"\n")
            if end < 0:
                self._skipped += len(data)
                return
            self._skipped += end
            self._deliver(self._buffer, self._skipped)
            self._buffer, self._skipped = b"", None
            data = data[end + 1:]
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._deliver(line[:MAX_LINE], len(line))
        if len(self._buffer) > MAX_LINE:
            self._skipped = len(self._buffer)
            self._buffer = self._buffer[:MAX_LINE]

    def _deliver(self, raw: bytes, length: int) -> None:
        if raw.endswith(b"\r") and length == len(raw):
            raw, length = raw[:-1], length - 1
        try:
            self._sink(raw, length)
        except Exception:
            if not self._failed:  # one report, not one per line
                self._failed = True
                log.exception("writing the output of %s failed", self._what)

    def close(self) -> None:
        """Stop reading; a partial last line is delivered."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        self._loop.remove_reader(fd)
        if self._buffer or self._skipped is not None:
            self._deliver(self._buffer, self._skipped or len(self._buffer))
            self._buffer, self._skipped = b"", None
        os.close(fd)


def spawn(argv: list[str], *, env: dict[str, str] | None, cwd: str | None, detach: bool,
          death_signal: int, stdout: StreamPlan, stderr: StreamPlan) -> subprocess.Popen[bytes]:
    """Start the child in its own process group (own session when detached)."""
    preexec = child_preexec(None if detach else death_signal)
    return subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=stdout.popen_arg,
        stderr=stderr.popen_arg,
        env=env,
        cwd=cwd,
        close_fds=True,
        start_new_session=detach,
        process_group=None if detach else 0,
        preexec_fn=preexec,  # noqa: PLW1509 - see the module docstring
    )


def killpg(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return True  # nobody left to signal
    except PermissionError:
        return False
    return True


def group_exists(pgid: int) -> bool:
    """Whether process group ``pgid`` still has a member that is not a zombie.

    Zombies run nothing: a group of zombies re-parented to an init that reaps
    lazily (seconds, for some container runtimes' PID 1) has finished.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(line.pgid == pgid and line.state is not ProcessState.ZOMBIE
               for _, line in all_stat_lines())

"""Process states and the parsed ``/proc/<pid>/status`` file.

The periodic watcher only needs the one-letter state, which it reads from
``/proc/<pid>/stat`` through a descriptor kept open for the life of the
process (one ``pread`` per tick, and a reused pid can never be misread:
the old descriptor answers ESRCH). The full status file is parsed when the
state changes or when someone asks for it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache


class ProcessState(StrEnum):
    """A process state: the kernel's (``State:`` of the status file) or the manager's own."""

    RUNNING = "running"
    SLEEPING = "sleeping"
    DISK_SLEEP = "disk sleep"
    STOPPED = "stopped"
    TRACING_STOP = "tracing stop"
    ZOMBIE = "zombie"
    DEAD = "dead"
    IDLE = "idle"
    PARKED = "parked"
    WAKEKILL = "wakekill"
    WAKING = "waking"
    #: Created, not started yet.
    INITIAL = "initial"
    #: Not running (exited, killed, reaped) or not answering.
    TERMINATED = "terminated"
    #: Running, but its status file cannot be read.
    UNAVAILABLE = "unavailable"
    #: A state this version does not know; ``ProcessStatus.state_label`` has the kernel's word.
    UNKNOWN = "unknown"

    @property
    def is_alive(self) -> bool:
        """The process exists and has not exited (a zombie has exited)."""
        return self not in _NOT_ALIVE

    @classmethod
    def from_letter(cls, letter: str) -> ProcessState:
        return _BY_LETTER.get(letter, cls.UNKNOWN)

    @classmethod
    def from_label(cls, label: str) -> ProcessState:
        """``"disk sleep"`` -> DISK_SLEEP; the kernel's words, any case or spacing."""
        word = " ".join(label.lower().split())
        if word == "paging":  # Linux < 2.6.20 called W this
            return cls.WAKING
        try:
            state = cls(word)
        except ValueError:
            return cls.UNKNOWN
        return state if state not in _MANAGER_STATES else cls.UNKNOWN


_BY_LETTER = {
    "R": ProcessState.RUNNING,
    "S": ProcessState.SLEEPING,
    "D": ProcessState.DISK_SLEEP,
    "T": ProcessState.STOPPED,
    "t": ProcessState.TRACING_STOP,
    "Z": ProcessState.ZOMBIE,
    "X": ProcessState.DEAD,
    "x": ProcessState.DEAD,
    "I": ProcessState.IDLE,
    "P": ProcessState.PARKED,
    "K": ProcessState.WAKEKILL,
    "W": ProcessState.WAKING,
}
_MANAGER_STATES = frozenset({ProcessState.INITIAL, ProcessState.TERMINATED,
                             ProcessState.UNAVAILABLE, ProcessState.UNKNOWN})
_NOT_ALIVE = frozenset({ProcessState.ZOMBIE, ProcessState.DEAD, ProcessState.INITIAL,
                        ProcessState.TERMINATED})


@dataclass(frozen=True, slots=True)
class IdSet:
    """The ``Uid:``/``Gid:`` line: real, effective, saved set and file system ids."""

    real: int
    effective: int
    saved: int
    filesystem: int


def signals_in(mask: int) -> frozenset[signal.Signals]:
    """The signals whose bits are set in a ``SigPnd``/``SigBlk``/... mask (bit n-1 = signal n)."""
    found = set()
    for number in range(1, mask.bit_length() + 1):
        if mask >> (number - 1) & 1:
            try:
                found.add(signal.Signals(number))
            except ValueError:  # a real-time signal without a name
                continue
    return frozenset(found)


@dataclass(frozen=True, slots=True)
class ProcessStatus:
    """``/proc/<pid>/status``, parsed. Sizes are bytes; fields the kernel omits are ``None``.

    ``raw`` holds every line as text, for fields this class does not name.
    """

    state: ProcessState
    name: str = ""
    state_code: str = ""
    state_label: str = ""
    umask: int | None = None
    tgid: int | None = None
    ngid: int | None = None
    pid: int | None = None
    ppid: int | None = None
    tracer_pid: int | None = None
    uid: IdSet | None = None
    gid: IdSet | None = None
    fd_size: int | None = None
    groups: tuple[int, ...] = ()
    ns_tgid: tuple[int, ...] = ()
    ns_pid: tuple[int, ...] = ()
    ns_pgid: tuple[int, ...] = ()
    ns_sid: tuple[int, ...] = ()
    vm_peak: int | None = None
    vm_size: int | None = None
    vm_lck: int | None = None
    vm_pin: int | None = None
    vm_hwm: int | None = None
    vm_rss: int | None = None
    rss_anon: int | None = None
    rss_file: int | None = None
    rss_shmem: int | None = None
    vm_data: int | None = None
    vm_stk: int | None = None
    vm_exe: int | None = None
    vm_lib: int | None = None
    vm_pte: int | None = None
    vm_swap: int | None = None
    hugetlb_pages: int | None = None
    core_dumping: bool | None = None
    threads: int | None = None
    sig_queued: int | None = None
    sig_max: int | None = None
    sig_pnd: int | None = None
    shd_pnd: int | None = None
    sig_blk: int | None = None
    sig_ign: int | None = None
    sig_cgt: int | None = None
    cap_inh: int | None = None
    cap_prm: int | None = None
    cap_eff: int | None = None
    cap_bnd: int | None = None
    cap_amb: int | None = None
    no_new_privs: bool | None = None
    seccomp: int | None = None
    cpus_allowed: str | None = None
    cpus_allowed_list: str | None = None
    mems_allowed_list: str | None = None
    voluntary_ctxt_switches: int | None = None
    nonvoluntary_ctxt_switches: int | None = None
    raw: Mapping[str, str] = field(default_factory=dict, repr=False)

    def pending_signals(self) -> frozenset[signal.Signals]:
        return signals_in((self.sig_pnd or 0) | (self.shd_pnd or 0))

    def blocked_signals(self) -> frozenset[signal.Signals]:
        return signals_in(self.sig_blk or 0)

    def ignored_signals(self) -> frozenset[signal.Signals]:
        return signals_in(self.sig_ign or 0)

    def caught_signals(self) -> frozenset[signal.Signals]:
        return signals_in(self.sig_cgt or 0)


_STATE_LINE = re.compile(r"^(\S)\s*\((.*)\)$")

# status-file key -> (field, converter)
_INT = "int"
_SIZE = "size"
_HEX = "hex"
_OCT = "oct"
_IDS = "ids"
_INTS = "ints"
_BOOL = "bool"
_TEXT = "text"
_FIELDS: dict[str, tuple[str, str]] = {
    "Name": ("name", _TEXT),
    "Umask": ("umask", _OCT),
    "Tgid": ("tgid", _INT),
    "Ngid": ("ngid", _INT),
    "Pid": ("pid", _INT),
    "PPid": ("ppid", _INT),
    "TracerPid": ("tracer_pid", _INT),
    "Uid": ("uid", _IDS),
    "Gid": ("gid", _IDS),
    "FDSize": ("fd_size", _INT),
    "Groups": ("groups", _INTS),
    "NStgid": ("ns_tgid", _INTS),
    "NSpid": ("ns_pid", _INTS),
    "NSpgid": ("ns_pgid", _INTS),
    "NSsid": ("ns_sid", _INTS),
    "VmPeak": ("vm_peak", _SIZE),
    "VmSize": ("vm_size", _SIZE),
    "VmLck": ("vm_lck", _SIZE),
    "VmPin": ("vm_pin", _SIZE),
    "VmHWM": ("vm_hwm", _SIZE),
    "VmRSS": ("vm_rss", _SIZE),
    "RssAnon": ("rss_anon", _SIZE),
    "RssFile": ("rss_file", _SIZE),
    "RssShmem": ("rss_shmem", _SIZE),
    "VmData": ("vm_data", _SIZE),
    "VmStk": ("vm_stk", _SIZE),
    "VmExe": ("vm_exe", _SIZE),
    "VmLib": ("vm_lib", _SIZE),
    "VmPTE": ("vm_pte", _SIZE),
    "VmSwap": ("vm_swap", _SIZE),
    "HugetlbPages": ("hugetlb_pages", _SIZE),
    "CoreDumping": ("core_dumping", _BOOL),
    "Threads": ("threads", _INT),
    "SigPnd": ("sig_pnd", _HEX),
    "ShdPnd": ("shd_pnd", _HEX),
    "SigBlk": ("sig_blk", _HEX),
    "SigIgn": ("sig_ign", _HEX),
    "SigCgt": ("sig_cgt", _HEX),
    "CapInh": ("cap_inh", _HEX),
    "CapPrm": ("cap_prm", _HEX),
    "CapEff": ("cap_eff", _HEX),
    "CapBnd": ("cap_bnd", _HEX),
    "CapAmb": ("cap_amb", _HEX),
    "NoNewPrivs": ("no_new_privs", _BOOL),
    "Seccomp": ("seccomp", _INT),
    "Cpus_allowed": ("cpus_allowed", _TEXT),
    "Cpus_allowed_list": ("cpus_allowed_list", _TEXT),
    "Mems_allowed_list": ("mems_allowed_list", _TEXT),
    "voluntary_ctxt_switches": ("voluntary_ctxt_switches", _INT),
    "nonvoluntary_ctxt_switches": ("nonvoluntary_ctxt_switches", _INT),
}
_UNIT = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def _convert(kind: str, text: str) -> object:
    if kind == _TEXT:
        return text
    if kind == _INT:
        return int(text)
    if kind == _OCT:
        return int(text, 8)
    if kind == _HEX:
        return int(text, 16)
    if kind == _BOOL:
        return int(text) != 0
    if kind == _INTS:
        return tuple(int(part) for part in text.split())
    if kind == _IDS:
        parts = [int(part) for part in text.split()]
        if len(parts) != 4:
            raise ValueError("expected four ids")
        return IdSet(*parts)
    # _SIZE: "1234 kB"
    number, _, unit = text.partition(" ")
    return int(number) * _UNIT[unit.strip().lower() or "b"]


def parse_status(text: str) -> ProcessStatus:
    """Parse the text of a status file; a line that does not parse is kept in ``raw`` only."""
    raw: dict[str, str] = {}
    values: dict[str, object] = {}
    state = ProcessState.UNKNOWN
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        raw[key] = value
        if key == "State":
            match = _STATE_LINE.match(value)
            if match:
                values["state_code"] = match.group(1)
                values["state_label"] = match.group(2)
                state = ProcessState.from_label(match.group(2))
                if state is ProcessState.UNKNOWN:
                    state = ProcessState.from_letter(match.group(1))
            continue
        if key == "SigQ":
            queued, _, limit = value.partition("/")
            with contextlib.suppress(ValueError):
                values["sig_queued"], values["sig_max"] = int(queued), int(limit)
            continue
        spec = _FIELDS.get(key)
        if spec is None:
            continue
        try:
            values[spec[0]] = _convert(spec[1], value)
        except (ValueError, KeyError):
            continue
    return ProcessStatus(state=state, raw=raw, **values)  # type: ignore[arg-type]


def read_status(pid: int) -> ProcessStatus:
    """The status of ``pid``; ProcessLookupError when it does not exist (any more).

    PermissionError (and other OSErrors) are passed on: the process exists but
    cannot be read, which the watcher reports as ``unavailable``.
    """
    try:
        with open(f"/proc/{pid}/status", "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise ProcessLookupError(errno.ESRCH, f"no process {pid}") from None
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            raise ProcessLookupError(errno.ESRCH, f"no process {pid}") from None
        raise
    return parse_status(data.decode("utf-8", "replace"))


@dataclass(frozen=True, slots=True)
class StatLine:
    """The few fields of ``/proc/<pid>/stat`` the watcher uses."""

    state: ProcessState
    ppid: int
    pgid: int
    start_ticks: int

    @property
    def start_time(self) -> float:
        """Unix time when the process started."""
        return boot_time() + self.start_ticks / clock_ticks()


def parse_stat(data: bytes) -> StatLine:
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    return StatLine(ProcessState.from_letter(rest[0].decode()), int(rest[1]), int(rest[2]),
                    int(rest[19]))


class StatFile:
    """``/proc/<pid>/stat`` held open: cheap repeated reads, immune to pid reuse."""

    __slots__ = ("fd", "pid")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        try:
            self.fd: int | None = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ProcessLookupError(errno.ESRCH, f"no process {pid}") from None

    def read(self) -> StatLine:
        """Raises ProcessLookupError once the process has been reaped."""
        if self.fd is None:
            raise ProcessLookupError(errno.ESRCH, f"no process {self.pid}")
        try:
            data = os.pread(self.fd, 1024, 0)
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                raise ProcessLookupError(errno.ESRCH, f"no process {self.pid}") from None
            raise
        if not data:
            raise ProcessLookupError(errno.ESRCH, f"no process {self.pid}")
        return parse_stat(data)

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


def read_stat(pid: int) -> StatLine:
    stat = StatFile(pid)
    try:
        return stat.read()
    finally:
        stat.close()


def all_stat_lines() -> Iterator[tuple[int, StatLine]]:
    """``(pid, stat line)`` of every process visible in /proc; vanishing ones are skipped."""
    with os.scandir("/proc") as entries:
        pids = [int(entry.name) for entry in entries if entry.name.isdigit()]
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            yield pid, read_stat(pid)


@cache
def clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


@cache
def boot_time() -> float:
    with open("/proc/stat", "rb") as file:
        for line in file:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def describe_exit(returncode: int | None) -> str:
    """How a process ended: ``exit code 3``, ``killed by SIGKILL`` (``exit code unknown``)."""
    if returncode is None:
        return "exit code unknown"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"

"""What a test Kubernetes node changes on the machine, and how it is put back.

A node changes things no flag moves: machine-wide sysctls (the kubelet's, at its
start), fixed directories (/var/lib/cni, /run/containerd/s, ...), mounts (volumes,
container root filesystems, network namespaces), cgroups, and processes that
outlive their parent (containerd's shims, the containers). ``MachineState``
records the first two before the node starts, in a file that outlives a crashed
run, and ``restore`` puts everything back: after a normal stop, and before the
next start when a previous run died half-way.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

__all__ = ["MachineState", "acquire_lock", "kill_processes", "mount_points", "remove_cgroups",
           "unmount_below"]

#: What the kubelet sets at start when it differs (``protectKernelDefaults`` would
#: make it refuse to start instead): put back once it is up and at teardown.
KUBELET_SYSCTLS = (
    "vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes",
)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls(names: Iterable[str] = KUBELET_SYSCTLS) -> dict[str, str]:
    return {n: _sysctl_path(n).read_text().strip() for n in names}


@dataclass
class MachineState:
    """The sysctls as found, the fixed paths that did not exist and the mounts below
    those that did, saved in ``file``.

    ``load_or_record`` keeps the file of a run that crashed (it has the values the
    machine had before that run), so that a leftover is never taken for the original.
    """

    file: Path
    sysctls: dict[str, str] = field(default_factory=dict)
    absent_paths: list[str] = field(default_factory=list)
    #: Mount points at or below the fixed paths before the node started (``ip netns``
    #: turns /run/netns into a mount point of its own).
    mounts: list[str] = field(default_factory=list)
    fixed_paths: list[str] = field(default_factory=list)

    @classmethod
    def load_or_record(cls, file: Path, fixed_paths: Iterable[Path]) -> MachineState:
        if file.exists():
            data = json.loads(file.read_text())
            return cls(file, dict(data["sysctls"]), list(data["absent_paths"]),
                       list(data["mounts"]), list(data["fixed_paths"]))
        paths = [str(p) for p in fixed_paths]
        state = cls(file, read_sysctls(), [p for p in paths if not Path(p).exists()],
                    [m for m in mount_points() if any(_below(m, p) for p in paths)], paths)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"sysctls": state.sysctls, "absent_paths": state.absent_paths,
                                   "mounts": state.mounts, "fixed_paths": paths}))
        tmp.replace(file)
        return state

    def restore_sysctls(self) -> None:
        for name, value in self.sysctls.items():
            path = _sysctl_path(name)
            if path.read_text().strip() != value:
                path.write_text(value + "\n")

    def restore(self) -> None:
        """Sysctls back, what was mounted below the fixed paths since unmounted, the
        fixed paths the node created removed, and the record deleted."""
        self.restore_sysctls()
        for path in self.fixed_paths:
            unmount_below(Path(path), keep=self.mounts)
        for path in self.absent_paths:
            unmount_below(Path(path))
            _remove(Path(path))
        self.file.unlink(missing_ok=True)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.is_dir():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def mount_points() -> list[str]:
    """Every mount point of this mount namespace, as /proc/self/mountinfo has them."""
    points = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            raw = line.split()[4]
            # Octal escapes for space, tab, newline and backslash.
            points.append(raw.encode().decode("unicode_escape"))
    return points


def _below(point: str, root: str) -> bool:
    root = root.rstrip("/")
    return point == root or point.startswith(root + "/")


def unmount_below(root: Path, keep: Iterable[str] = ()) -> None:
    """Unmount (lazily) everything mounted at or below ``root``, deepest first, except
    the mount points in ``keep``."""
    kept = set(keep)
    below = [p for p in mount_points() if _below(p, str(root)) and p not in kept]
    for point in sorted(set(below), key=lambda p: p.count("/"), reverse=True):
        # A path stacked twice (ip netns mounts /run/netns over itself) needs two.
        for _ in range(below.count(point)):
            subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def kill_processes(belongs: Callable[[int], bool], timeout: float = 10.0) -> list[int]:
    """SIGKILL every process ``belongs(pid)`` says is the node's (never this process
    or its ancestors) and wait until they are gone; returns their pids."""
    spared = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        pid = _parent(pid)
        spared.add(pid)
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        try:
            if belongs(int(entry.name)):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
        except (OSError, ValueError):
            continue  # it ended meanwhile
    deadline = time.monotonic() + timeout
    while killed and time.monotonic() < deadline:
        alive = [p for p in killed if _alive(p)]
        if not alive:
            break
        time.sleep(0.05)
    return killed


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 1
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie is gone for our purposes: its parent reaps it


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def cgroup_paths(pid: int) -> list[str]:
    """The process's cgroup path in each hierarchy."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    return [line.split(":", 2)[2] for line in lines if line.count(":") >= 2]


def remove_cgroups(name: str, root: Path = Path("/sys/fs/cgroup"), timeout: float = 10.0) -> None:
    """Remove the cgroup ``name`` (with its children, deepest first) from every
    hierarchy; an exited process may hold one for a moment, hence the retries."""
    deadline = time.monotonic() + timeout
    for hierarchy in root.iterdir():
        top = hierarchy / name
        if not top.is_dir():
            continue
        dirs = sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: len(d.parts),
                      reverse=True)
        for d in [*dirs, top]:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() >= deadline:
                        raise
                    time.sleep(0.05)


def acquire_lock(path: Path, timeout: float, why: str) -> IO[str]:
    """An exclusive flock on ``path``, held while the returned file is open (the kernel
    drops it when the process dies); TimeoutError naming the holder after ``timeout`` s."""
    lock = open(path, "a+")  # noqa: SIM115  (the caller keeps it open)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                lock.seek(0)
                holder = lock.read().strip()
                lock.close()
                raise TimeoutError(f"{path} held for over {timeout:g}s by {holder}: {why}"
                                   ) from None
            time.sleep(1)
    lock.truncate(0)
    lock.write(f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}\n")
    lock.flush()
    return lock

"""Helpers for supervisor tests: the kubelet's ConfigMap volume, and the process table."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

DATA = "..data"


class ConfigMapVolume:
    """A directory laid out and updated the way the kubelet updates a mounted ConfigMap.

    Each version is a new ``..<timestamp>`` directory; ``..data`` is a symlink to it,
    replaced by a rename (atomic); every key is a symlink ``<key> -> ..data/<key>``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._version = 0

    def path(self, key: str = "supervisor.conf") -> Path:
        return self.directory / key

    def write(self, files: dict[str, str]) -> Path:
        self._version += 1
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{self._version:09d}"
        version_dir = self.directory / stamp
        version_dir.mkdir()
        for key, text in files.items():
            (version_dir / key).write_text(text)
        data = self.directory / DATA
        old = data.readlink() if data.is_symlink() else None
        tmp = self.directory / "..data_tmp"
        tmp.symlink_to(stamp)
        tmp.rename(data)  # the atomic swap
        for key in files:
            link = self.directory / key
            if not link.is_symlink():
                link.symlink_to(f"{DATA}/{key}")
        if old is not None:
            shutil.rmtree(self.directory / old)
        return version_dir

    def hide(self) -> Path:
        """Make the files disappear (``..data`` gone) until :meth:`restore`."""
        target = (self.directory / DATA).readlink()
        (self.directory / DATA).unlink()
        return target

    def restore(self, target: Path) -> None:
        (self.directory / DATA).symlink_to(target)


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def alive(pid: int) -> bool:
    """In the process table and not a zombie."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def processes_with(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and marker in cmdline(int(entry.name)) \
                and alive(int(entry.name)) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            data = (entry / "stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            members.append(int(entry.name))
    return members

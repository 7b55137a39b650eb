"""Helpers for process manager tests: waiting on conditions, looking at pids."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests._wait import wait_until
from tests.servers._util import free_port
from tests.sidecar_proc import request

PopenT = TypeVar("PopenT", bound="subprocess.Popen[Any]")


class Pids:
    """Processes (and process groups) a test started outside a manager; SIGKILLed at teardown."""

    def __init__(self) -> None:
        self.pids: list[int] = []
        self.groups: list[int] = []
        self.popens: list[subprocess.Popen[Any]] = []

    def add(self, pid: int, *, group: bool = False) -> int:
        (self.groups if group else self.pids).append(pid)
        return pid

    def track(self, popen: PopenT) -> PopenT:
        """Kill ``popen``, wait for it and close its pipes at teardown, pass or fail: a Popen
        collected before it was waited for warns "subprocess N is still running"."""
        self.popens.append(popen)
        return popen

    def kill_all(self) -> None:
        for pgid in self.groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        for popen in self.popens:
            popen.kill()  # does nothing once it has been waited for
            popen.wait()
            for stream in (popen.stdin, popen.stdout, popen.stderr):
                if stream is not None:
                    stream.close()
        for pid in self.pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in self.pids:  # reap the ones that are our children
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def running(pid: int) -> bool:
    """The process exists and has not exited (a zombie has exited)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def assert_sidecar_as_pid_1_reaps(config_dir: Path, zombies: int) -> None:
    """Run ``sidecar run`` as PID 1 of a new pid namespace on ``config_dir`` (whose programs
    leave orphans), and fail unless ``zombies`` of those orphans are seen and each reaped."""
    port = free_port()
    log_path = config_dir / "sidecar.log"
    with open(log_path, "wb") as log:
        unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM",
             sys.executable, "-m", "sidecar", "run", "--config-dir", str(config_dir),
             "--http-port", str(port)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2])
    try:
        wait_until(lambda: request("GET", f"http://127.0.0.1:{port}/liveness")[0] == 200, 20,
                   "the sidecar as PID 1 answering")
        sidecar = wait_until(lambda: proc_children(unshare.pid), 5, "the sidecar's pid")[0]
        ns_pids = next(line for line in Path(f"/proc/{sidecar}/status").read_text().splitlines()
                       if line.startswith("NSpid:"))
        assert ns_pids.split()[-1] == "1"  # PID 1 in its own namespace
        seen: set[int] = set()

        def zombies_seen() -> bool:
            seen.update(pid for pid in proc_children(sidecar) if proc_state(pid) == "Z")
            return len(seen) >= zombies

        wait_until(zombies_seen, 10, f"{zombies} orphans become zombies", interval=0.02)
        # Each is reaped; a sidecar that does not reap leaves it a zombie for good. (Pids
        # are not reused this soon: the namespace hands them out in order.)
        try:
            wait_until(lambda: not [pid for pid in seen if proc_state(pid) == "Z"], 10,
                       "zombies reaped")
        except TimeoutError:
            pytest.fail(f"zombies not reaped: {[pid for pid in seen if proc_state(pid) == 'Z']}"
                        f"\n{log_path.read_text()}")
        # PID 1 ignores signals it has no handler for; the agent's handler stops it.
        os.kill(sidecar, signal.SIGTERM)
        assert unshare.wait(15) == 0
    finally:
        if unshare.poll() is None:
            unshare.kill()  # --kill-child passes it on
            unshare.wait()


def proc_children(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (empty once it is gone)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` (``Z`` for a zombie); None once it is gone."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:][:1].decode()

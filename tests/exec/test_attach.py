"""Attaching to processes started elsewhere: status, termination, zombies, take-over."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sidecar.exec.processmanager import (
    Args,
    AttachError,
    AutoTerminate,
    EventKind,
    ProcessEvent,
    ProcessManager,
    ProcessStartError,
    ProcessState,
    Restarts,
)
from tests._wait import until
from tests.exec.helpers import Pids, exists, running

# A parent that is not the sidecar: it starts `sleep` and reaps it when it ends (or, with
# "keep-zombie", never reaps it), printing the sleeper's pid.
PARENT = """
import os, sys, time
pid = os.posix_spawn("/bin/sleep", ["sleep", "60"], os.environ)
print(pid, flush=True)
if sys.argv[1] == "reap":
    os.waitpid(pid, 0)
time.sleep(60)
"""


def start_elsewhere(pids: Pids, mode: str = "reap") -> int:
    parent = pids.track(subprocess.Popen([sys.executable, "-c", PARENT, mode],
                                         stdout=subprocess.PIPE, text=True))
    assert parent.stdout is not None
    return pids.add(int(parent.stdout.readline()))


async def test_attach_reports_status_and_termination(manager: ProcessManager,
                                                     pids: Pids) -> None:
    pid = start_elsewhere(pids)
    proc = await manager.attach_process("outside", "", pid)
    assert proc.attached and proc.is_alive()
    assert proc.pid == pid
    assert proc.command == "" and proc.arguments == ()
    assert proc.status.name == "sleep"
    assert proc.status.ppid != os.getpid()  # not our child
    assert proc.state in (ProcessState.SLEEPING, ProcessState.RUNNING)
    assert proc.start_time is not None and abs(proc.start_time - time.time()) < 30
    assert manager.get_process_by_pid(pid) is proc
    events = proc.notifications()
    os.kill(pid, signal.SIGTERM)
    async with events:
        async for event in events:
            if event.state is ProcessState.TERMINATED:
                break
    assert event.returncode is None  # only the parent learns the exit code
    assert not event.expected
    assert not proc.is_alive()
    assert not running(pid)


async def test_a_zombie_that_its_parent_does_not_reap_is_reported(
        manager: ProcessManager, pids: Pids) -> None:
    pid = start_elsewhere(pids, "keep-zombie")
    proc = await manager.attach_process("neglected", "", pid)
    os.kill(pid, signal.SIGKILL)
    await until(lambda: proc.state is ProcessState.ZOMBIE, 5, what="zombie state")
    assert not proc.is_alive()
    assert await proc.wait() is None


async def test_auto_terminate_reaps_an_attached_child(manager: ProcessManager) -> None:
    pid = os.posix_spawn("/bin/sh", ["sh", "-c", "sleep 0.2; exit 5"], os.environ)
    proc = await manager.attach_process("own-child", "", pid, AutoTerminate())
    assert await proc.wait() == 5  # reaped by the manager, so the exit code is known
    assert proc.state is ProcessState.TERMINATED
    assert not exists(pid)


async def test_attached_process_is_replaced_from_its_command_when_it_exits(
        manager: ProcessManager, pids: Pids) -> None:
    pid = start_elsewhere(pids)
    proc = await manager.attach_process("adopted", "/bin/sleep", pid, Args("60"), Restarts(1))
    events: list[ProcessEvent] = []
    proc.add_listener(events.append)
    os.kill(pid, signal.SIGKILL)
    await until(lambda: proc.pid != pid and proc.is_alive(), 5, what="the replacement")
    assert not proc.attached  # ours now
    assert proc.status.ppid == os.getpid()
    started = [e for e in events if e.kind is EventKind.STARTED]
    assert [e.pid for e in started] == [proc.pid]
    assert events[events.index(started[0]) + 1].state is ProcessState.RUNNING
    await proc.stop_and_wait()


async def test_attach_errors(manager: ProcessManager) -> None:
    child = subprocess.Popen(["/bin/true"])
    child.wait()
    with pytest.raises(AttachError, match=f"pid {child.pid}: no such process"):
        await manager.attach_process("gone", "", child.pid)
    assert manager.get_process("gone") is None
    own = os.getpid()
    proc = await manager.attach_process("me", "", own)
    with pytest.raises(ProcessStartError, match="attached without a command"):
        await proc.restart()
    await manager.delete("me")  # never stop the test runner itself

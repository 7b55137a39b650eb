"""The sidecar's own death and PID-1 duties: parent-death signal, detach, zombie reaping."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sidecar.exec.processmanager import (
    NO_BACKOFF,
    Args,
    ProcessManager,
    Restarts,
    Writer,
    ZombieReaper,
)
from sidecar.exec.processmanager._spawn import group_exists
from sidecar.exec.processmanager.reaper import claim, release
from sidecar.exec.processmanager.status import ProcessState, read_stat
from tests._wait import until, wait_until
from tests.exec.helpers import Pids, exists, running

ROOT = Path(__file__).resolve().parents[2]


def run_manager_child(pids: Pids, spec: dict[str, Any]) -> tuple[subprocess.Popen[str],
                                                                 dict[str, int]]:
    child = pids.track(subprocess.Popen(
        [sys.executable, "-m", "tests.exec.manager_child", json.dumps(spec)],
        stdout=subprocess.PIPE, text=True, cwd=ROOT))
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line, f"the manager child exited with {child.wait()}"
    started = json.loads(line)["processes"]
    for pid in started.values():
        pids.add(pid)
    return child, started


def test_a_detached_process_outlives_a_killed_sidecar_and_a_bound_one_dies(pids: Pids) -> None:
    child, started = run_manager_child(pids, {"processes": [
        {"name": "bound", "cmd": "/bin/sleep", "args": ["60"]},
        {"name": "kept", "cmd": "/bin/sleep", "args": ["60"], "detach": True},
    ]})
    bound, kept = started["bound"], started["kept"]
    assert running(bound) and running(kept)
    child.kill()  # SIGKILL: no close(), no cleanup, only the kernel acts
    child.wait()
    wait_until(lambda: not running(bound), 5, what="the bound process dying with its parent")
    assert running(kept)


def test_zombies_of_orphans_are_reaped_by_a_subreaper(pids: Pids, tmp_path: Path) -> None:
    orphan_file = tmp_path / "orphan"
    child, _ = run_manager_child(pids, {"subreaper": True, "reap": True, "processes": [
        # The shell exits at once; its background sleep is orphaned and, the manager being
        # a subreaper, re-parented to it. When the sleep ends, nobody but the reaper waits.
        {"name": "daemonish", "cmd": "/bin/sh",
         "args": ["-c", f"sleep 0.5 & echo $! > {orphan_file}; exit 0"]},
    ]})
    wait_until(lambda: orphan_file.exists() and orphan_file.read_text().strip(), 5,
                    what="orphan pid")
    orphan = int(orphan_file.read_text())
    pids.add(orphan)
    wait_until(lambda: _ppid(orphan) == child.pid or not exists(orphan), 5,
                    what="the orphan re-parented to the manager")
    wait_until(lambda: not exists(orphan), 5, what="the orphan's zombie reaped")
    assert child.poll() is None  # reaped by the manager, which is still running


def _ppid(pid: int) -> int | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(data[data.rindex(b")") + 2:].split()[1])


async def test_the_reaper_reaps_forgotten_children_only(pids: Pids) -> None:
    reaper = ZombieReaper(interval=0.02, grace=0.2)
    reaper.start()
    try:
        forgotten = os.posix_spawn("/bin/true", ["true"], os.environ)
        claimed = os.posix_spawn("/bin/true", ["true"], os.environ)
        claim(claimed)
        await until(lambda: not exists(forgotten), 5, what="the forgotten child reaped")
        assert exists(claimed)  # a claimed zombie is its owner's to reap
        release(claimed)
        await until(lambda: not exists(claimed), 5, what="the released child reaped")
        # Children that someone does wait for keep their exit status.
        shell = await asyncio.create_subprocess_exec("/bin/sh", "-c", "sleep 0.3; exit 7")
        popen = pids.track(subprocess.Popen(["/bin/sh", "-c", "sleep 0.3; exit 9"]))
        assert await shell.wait() == 7
        assert await asyncio.to_thread(popen.wait) == 9
        assert reaper.reaped == 2
    finally:
        await reaper.close()


async def test_managed_children_keep_their_exit_codes_with_the_reaper_on() -> None:
    async with ProcessManager(reap_zombies=True, reap_interval=0.01) as manager:
        assert manager.reaper is not None and manager.reaper.grace == 0.01
        proc = await manager.new_process("coded", "/bin/sh", Args("-c", "exit 42"),
                                         Restarts(10, NO_BACKOFF))
        codes: list[int | None] = []
        proc.add_listener(lambda e: codes.append(e.returncode) if e.returncode is not None
                          else None)
        await proc.start()
        await until(lambda: proc.gave_up, 5, what="ten restarts")
        assert set(codes) == {42}
        assert manager.reaper.reaped == 0


async def test_sigkill_reaches_members_that_outlive_their_leader(manager: ProcessManager) -> None:
    lines: list[str] = []
    script = "trap '' TERM; (trap '' TERM; sleep 60) & echo $!; exit 0"
    proc = await manager.new_process("leader", "/bin/sh", Args("-c", script),
                                     Writer(stdout=lines.append))
    await proc.start()
    await until(lambda: lines, 5, what="member pid")
    member = int(lines[0])
    assert await proc.wait() == 0
    assert running(member)
    # The leader is gone; stop_and_wait has nothing to signal, but kill takes the group.
    await proc.kill()
    await until(lambda: not running(member), 5, what="the group member killed")



def test_a_group_of_zombies_counts_as_finished(pids: Pids) -> None:
    # An init that reaps lazily leaves a stopped program's grandchildren as zombies for
    # seconds; a stop must not wait for them (it once took 2 s where PID 1 reaps late).
    member = pids.track(subprocess.Popen(["/bin/sh", "-c", "read line"],
                                         stdin=subprocess.PIPE, start_new_session=True))
    assert member.stdin is not None
    assert group_exists(member.pid), "a live member keeps its group running"
    member.stdin.close()  # it exits; not waited for, it stays our zombie
    wait_until(lambda: read_stat(member.pid).state is ProcessState.ZOMBIE, 5,
                    what="the member a zombie")
    assert not group_exists(member.pid)


async def test_the_plugin_becomes_a_subreaper_and_reaps_when_asked() -> None:
    from sidecar.exec.processmanager import (
        ProcessManagerConfig,
        ProcessManagerPlugin,
        is_child_subreaper,
        set_child_subreaper,
    )

    assert not is_child_subreaper()
    never = ProcessManagerPlugin(ProcessManagerConfig(reap_zombies="never"))
    assert never.manager.reaper is None
    plugin = ProcessManagerPlugin(ProcessManagerConfig(subreaper=True))
    assert not is_child_subreaper()  # building the plugin changes nothing yet
    try:
        await plugin.init()
        assert is_child_subreaper()
        assert plugin.manager.reaper is not None and plugin.manager.reaper.running
    finally:
        await plugin.close()
        set_child_subreaper(False)
    assert plugin.manager.reaper is not None and not plugin.manager.reaper.running


async def test_a_subreapers_stop_spares_the_children_its_host_already_had() -> None:
    """A library user's own child (here: the test run's servers) was never adopted, so the
    plugin's stop of adopted orphans must leave it running."""
    from sidecar.exec.processmanager import (
        ProcessManagerConfig,
        ProcessManagerPlugin,
        set_child_subreaper,
    )

    own = subprocess.Popen(["sleep", "60"])
    plugin = ProcessManagerPlugin(ProcessManagerConfig(subreaper=True))
    try:
        await plugin.init()
        await plugin.close()
        assert own.poll() is None, "the host's own child was stopped as an orphan"
    finally:
        set_child_subreaper(False)
        own.kill()
        own.wait()

"""Processes the manager starts: start, stop, kill, restart, signals, output, environment."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from sidecar.exec.processmanager import (
    DEVNULL,
    NO_BACKOFF,
    Args,
    Backoff,
    CPUAffinity,
    Detach,
    EnvVar,
    EventKind,
    LinePrefix,
    Notify,
    ProcessEvent,
    ProcessExistsError,
    ProcessManager,
    ProcessNotRunningError,
    ProcessStartError,
    ProcessState,
    Restarts,
    StopSignal,
    WorkingDir,
    Writer,
    process_health,
)
from sidecar.exec.processmanager import ProcessOptions as Opts
from sidecar.health.statuscheck import PluginState
from tests._wait import until
from tests.exec.helpers import Pids, running

PY = sys.executable


async def test_start_reports_status_and_stop_ends_it(manager: ProcessManager) -> None:
    proc = await manager.new_process("sleeper", "/bin/sleep", Args("60"))
    # One tuple: mypy would keep `proc.state` narrowed to INITIAL through the awaits below.
    assert (proc.state, proc.is_alive()) == (ProcessState.INITIAL, False)
    assert proc.command == "/bin/sleep"
    assert proc.arguments == ("60",)
    before = time.time()
    await proc.start()
    assert proc.is_alive()
    assert proc.pid is not None and running(proc.pid)
    assert proc.start_time is not None and before <= proc.start_time <= time.time()
    assert manager.get_process("sleeper") is proc
    assert manager.get_process_by_pid(proc.pid) is proc
    assert manager.get_all_processes() == [proc]
    status = proc.update_status()
    assert status.name == proc.status_name == "sleep"
    assert status.ppid == os.getpid()
    assert status.state in (ProcessState.SLEEPING, ProcessState.RUNNING)
    await until(lambda: proc.state is ProcessState.SLEEPING, 5, what="state read")
    assert proc.uptime > 0
    await proc.start()  # running: nothing happens
    pid = proc.pid
    assert await proc.stop_and_wait() == -signal.SIGTERM
    assert proc.state is ProcessState.TERMINATED
    assert not proc.is_alive() and not running(pid)
    assert proc.uptime == 0.0
    assert await proc.wait() == -signal.SIGTERM  # already over: answers at once


async def test_an_exit_is_noticed_at_once_not_at_the_next_status_poll(
        tmp_path: Path) -> None:
    # With a status poll every 30 s, only the exit event (pidfd) can restart ten runs
    # within seconds; bench/processmanager.py measures the gap itself (p50 ~5 ms).
    manager = ProcessManager(status_interval=30.0)
    try:
        await _restart_ten_times(manager, tmp_path)
    finally:
        await manager.close()


async def _restart_ten_times(manager: ProcessManager, tmp_path: Path) -> None:
    stamps = tmp_path / "exits"
    # Each run records the time just before it exits, so the gap to the next start is
    # everything the sidecar adds: noticing the exit, reaping, forking the next one.
    code = ("import os, sys, time; time.sleep(0.02); "
            "open(sys.argv[1], 'a').write(repr(time.time()) + '\\n'); os._exit(3)")
    proc = await manager.new_process("flaky", PY, Args("-c", code, str(stamps)),
                                     Restarts(10, NO_BACKOFF))
    events: list[ProcessEvent] = []
    proc.add_listener(events.append)
    await proc.start()
    await until(lambda: proc.gave_up, timeout=25, what="ten restarts and the give-up")
    starts = [e.time for e in events if e.kind is EventKind.STARTED]
    exits = [float(t) for t in stamps.read_text().split()]
    assert len(starts) == 11 and len(exits) == 11
    gaps = sorted(start - exited for exited, start in zip(exits, starts[1:], strict=False))
    # Every gap far below the 30 s poll: only the exit event can restart that fast. How
    # fast (the 50 ms) is a figure of bench/processmanager.py (p50, p99 over 200
    # restarts), not a deadline a busy shared machine could miss.
    assert gaps[-1] < 2.5, f"an exit waited for the status poll; gaps: {gaps}"
    assert proc.restarts == 10
    exited = [e for e in events
              if e.kind is EventKind.STATUS and e.state is ProcessState.TERMINATED]
    assert [e.returncode for e in exited] == [3] * 11
    assert events[-1].kind is EventKind.GAVE_UP


async def test_the_first_restart_is_immediate_with_the_default_backoff(
        manager: ProcessManager) -> None:
    proc = await manager.new_process("once", "/bin/sh", Args("-c", "exit 1"), Restarts(1))
    events: list[ProcessEvent] = []
    proc.add_listener(events.append)
    await proc.start()
    await until(lambda: proc.gave_up, 5, what="one restart")
    kinds = [e.kind for e in events]
    assert EventKind.BACKOFF not in kinds
    assert kinds.count(EventKind.STARTED) == 2


async def test_restarts_forever_with_exponential_backoff(manager: ProcessManager) -> None:
    backoff = Backoff(base=0.02, cap=0.08, factor=2, reset_after=5)
    proc = await manager.new_process("crashloop", "/bin/sh", Args("-c", "exit 2"),
                                     Restarts(-1, backoff))
    events: list[ProcessEvent] = []
    proc.add_listener(events.append)
    await proc.start()
    await until(lambda: proc.restarts >= 12, timeout=20, what="a dozen restarts")
    assert proc.crash_looping
    assert process_health(proc)[0] is PluginState.ERROR
    delays = [e.delay for e in events if e.kind is EventKind.BACKOFF]
    assert delays[:5] == [0.02, 0.04, 0.08, 0.08, 0.08]
    # Each delayed restart really waited: its start comes at least `delay` after the exit.
    for index, event in enumerate(events):
        if event.kind is EventKind.BACKOFF:
            following = next((e for e in events[index:] if e.kind is EventKind.STARTED), None)
            if following is None:  # the restart after the last backoff has not come yet
                continue
            assert following.time - event.time >= event.delay * 0.9  # type: ignore[operator]
    assert EventKind.GAVE_UP not in [e.kind for e in events]
    await proc.stop_and_wait()
    stopped_at = proc.restarts
    await asyncio.sleep(backoff.cap * 3)  # a window to see that no restart follows a stop
    assert proc.restarts == stopped_at
    assert not proc.is_alive()


async def test_a_healthy_run_resets_the_backoff(manager: ProcessManager) -> None:
    backoff = Backoff(base=1.0, cap=5, reset_after=0.2)
    proc = await manager.new_process("steady", "/bin/sh", Args("-c", "sleep 0.25; exit 1"),
                                     Restarts(3, backoff))
    events: list[ProcessEvent] = []
    proc.add_listener(events.append)
    await proc.start()
    await until(lambda: proc.gave_up, timeout=10, what="three restarts")
    assert EventKind.BACKOFF not in [e.kind for e in events]
    assert not proc.crash_looping


async def test_stop_and_wait_kills_a_process_that_ignores_sigterm(
        manager: ProcessManager) -> None:
    ready = asyncio.Event()
    code = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)")
    # Its own stop timeout is long: a stop that ignored kill_after would wait 30 s.
    proc = await manager.new_process("stubborn", PY, Args("-c", code),
                                     Writer(stdout=lambda line: ready.set()),
                                     StopSignal(signal.SIGTERM, timeout=30))
    await proc.start()
    async with asyncio.timeout(10):
        await ready.wait()
    pid = proc.pid
    assert pid is not None
    began = time.monotonic()
    returncode = await proc.stop_and_wait(kill_after=0.5)
    took = time.monotonic() - began
    assert returncode == -signal.SIGKILL
    assert 0.5 <= took < 10, took
    assert not running(pid)


async def test_stop_signal_and_timeout_are_per_process(manager: ProcessManager) -> None:
    proc = await manager.new_process("polite", "/bin/sleep", Args("60"),
                                     StopSignal(signal.SIGINT, timeout=30))
    await proc.start()
    began = time.monotonic()
    assert await proc.stop_and_wait() == -signal.SIGINT
    assert time.monotonic() - began < 10  # ended by SIGINT, not after the 30 s timeout


@pytest.mark.parametrize("detached", [False, True])
async def test_a_signal_the_sidecar_ignores_is_not_ignored_by_its_programs(
        manager: ProcessManager, pids: Pids, detached: bool) -> None:
    # Started in the background by a shell (or by nohup) the sidecar ignores SIGINT
    # (or SIGHUP); through exec its programs would too, and a stop by SIGINT would fail.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        extra = (Detach(),) if detached else ()
        proc = await manager.new_process("interruptible", "/bin/sleep", Args("60"),
                                         StopSignal(signal.SIGINT, timeout=30), *extra)
        await proc.start()
        assert proc.pid is not None
        pids.add(proc.pid)
        assert await proc.stop_and_wait() == -signal.SIGINT
    finally:
        signal.signal(signal.SIGINT, previous)


async def test_stop_reaches_the_whole_process_group(manager: ProcessManager) -> None:
    lines: list[str] = []
    proc = await manager.new_process(
        "shell", "/bin/sh", Args("-c", "sleep 60 & echo $!; sleep 60 & echo $!; wait"),
        Writer(stdout=lines.append))
    await proc.start()
    await until(lambda: len(lines) == 2, 5, what="grandchild pids")
    grandchildren = [int(line) for line in lines]
    assert all(os.getpgid(pid) == proc.pid for pid in grandchildren)
    await proc.stop_and_wait()
    await until(lambda: not any(running(pid) for pid in grandchildren), 5,
                     what="grandchildren stopped with the group")


async def test_kill_wait_and_signal(manager: ProcessManager) -> None:
    lines: list[str] = []
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGUSR1, lambda *a: print('usr1', flush=True))\n"
            "print('ready', flush=True)\n"
            "while True: time.sleep(1)\n")
    proc = await manager.new_process("target", PY, Args("-c", code), Writer(lines.append))
    await proc.start()
    await until(lambda: "ready" in lines, timeout=10, what="child ready")
    proc.signal(signal.SIGUSR1)
    await until(lambda: "usr1" in lines, 5, what="signal handled")
    waiter = asyncio.ensure_future(proc.wait())
    assert await proc.kill() == -signal.SIGKILL
    assert await waiter == -signal.SIGKILL
    with pytest.raises(ProcessNotRunningError):
        proc.signal(signal.SIGUSR1)


async def test_manual_restart_starts_a_new_run(manager: ProcessManager) -> None:
    proc = await manager.new_process("svc", "/bin/sleep", Args("60"))
    events: list[ProcessEvent] = []
    proc.add_listener(events.append)
    await proc.start()
    first = proc.pid
    await proc.restart()
    assert proc.pid != first and proc.is_alive()
    assert first is not None and not running(first)
    stop = next(e for e in events if e.state is ProcessState.TERMINATED)
    assert stop.expected and stop.pid == first
    started = next(e for e in events if e.kind is EventKind.STARTED and e.pid == proc.pid)
    assert events[events.index(started) + 1].state is ProcessState.RUNNING
    assert proc.restarts == 0  # only automatic restarts count


async def test_environment_is_exactly_the_one_given(manager: ProcessManager,
                                                    tmp_path: Path) -> None:
    lines: list[str] = []
    exact = await manager.new_process("exact", "/usr/bin/env",
                                      EnvVar({"ONLY": "this", "AND": "that"}),
                                      Writer(lines.append))
    await exact.start()
    assert await exact.wait() == 0
    await until(lambda: len(lines) == 2, 5, what="env output")
    assert sorted(lines) == ["AND=that", "ONLY=this"]

    inherited: list[str] = []
    os.environ["PM_TEST_MARKER"] = "inherited"
    try:
        plain = await manager.new_process("plain", "/usr/bin/env", Writer(inherited.append))
        await plain.start()
        await plain.wait()
    finally:
        del os.environ["PM_TEST_MARKER"]
    await until(lambda: "PM_TEST_MARKER=inherited" in inherited, 5, what="inherited env")

    where: list[str] = []
    cwd = await manager.new_process("cwd", "/bin/pwd", WorkingDir(tmp_path), Writer(where.append),
                                    EnvVar([]))
    await cwd.start()
    await cwd.wait()
    await until(lambda: where == [str(tmp_path)], 5, what="working dir")


async def test_output_to_files_prefixes_callbacks_and_nowhere(
        manager: ProcessManager, tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "deep" / "app.log"  # the directories do not exist yet
    proc = await manager.new_process(
        "logger", "/bin/sh", Args("-c", "echo out $$; echo err $$ >&2; exit 1"),
        Writer(stdout=log_file, stderr=log_file), Restarts(1, NO_BACKOFF))
    await proc.start()
    await until(lambda: proc.gave_up, 5, what="two runs")
    lines = log_file.read_text().splitlines()
    assert len(lines) == 4  # appended across runs, never truncated
    assert {line.split()[0] for line in lines} == {"out", "err"}

    stream = io.StringIO()  # no file descriptor: read through a pipe
    prefixed = await manager.new_process(
        "pfx", "/bin/sh", Args("-c", "printf 'a\\nb\\r\\npartial'"),
        Writer(stdout=LinePrefix("[pfx] ", stream)))
    await prefixed.start()
    await prefixed.wait()
    await until(lambda: stream.getvalue().count("\n") == 3, 5, what="prefixed lines")
    assert stream.getvalue() == "[pfx] a\n[pfx] b\n[pfx] partial\n"

    quiet = await manager.new_process("quiet", "/bin/echo", Args("nothing"), Writer(DEVNULL))
    await quiet.start()
    assert await quiet.wait() == 0


async def test_a_slow_notification_reader_never_blocks_the_watcher(
        manager: ProcessManager) -> None:
    queue: asyncio.Queue[ProcessEvent] = asyncio.Queue(maxsize=1)
    proc = await manager.new_process("noisy", "/bin/sh", Args("-c", "exit 1"),
                                     Restarts(20, NO_BACKOFF), Notify(queue))
    unread = proc.notifications(maxsize=2)
    everything = manager.subscribe()
    await proc.start()
    await until(lambda: proc.gave_up, timeout=20, what="twenty restarts, nobody reading")
    assert proc.restarts == 20
    assert unread.dropped > 0
    assert [e.kind for e in unread.pending()][-1] is EventKind.GAVE_UP  # newest kept
    assert queue.qsize() == 1 and queue.get_nowait().kind is EventKind.GAVE_UP
    seen = everything.pending()
    assert all(e.name == "noisy" for e in seen)
    assert sum(e.kind is EventKind.STARTED for e in seen) == 21
    everything.close()


async def test_notify_true_gives_the_process_its_own_queue(manager: ProcessManager) -> None:
    proc = await manager.new_process("q", "/bin/true", Notify())
    assert proc.notification_queue is not None
    await proc.start()
    await proc.wait()
    async with asyncio.timeout(5):
        first = await proc.notification_queue.get()
        second = await proc.notification_queue.get()
        third = await proc.notification_queue.get()
    assert (first.kind, second.state, third.state) == (
        EventKind.STARTED, ProcessState.RUNNING, ProcessState.TERMINATED)
    assert third.returncode == 0 and not third.expected
    assert [e.label for e in (first, second, third)] == ["started", "running", "terminated"]


async def test_stopped_and_continued_states_are_noticed(manager: ProcessManager) -> None:
    proc = await manager.new_process("pausable", "/bin/sleep", Args("60"))
    states: list[ProcessState] = []
    proc.add_listener(lambda e: states.append(e.state))
    await proc.start()
    await until(lambda: proc.state is ProcessState.SLEEPING, 5, what="sleeping")
    proc.signal(signal.SIGSTOP)
    await until(lambda: proc.state is ProcessState.STOPPED, 5, what="stopped")
    assert process_health(proc)[0] is PluginState.ERROR
    proc.signal(signal.SIGCONT)
    await until(lambda: proc.state is ProcessState.SLEEPING, 5, what="sleeping again")
    assert ProcessState.STOPPED in states
    assert proc.status.state is ProcessState.SLEEPING


async def test_cpu_affinity(manager: ProcessManager) -> None:
    proc = await manager.new_process("pinned", "/bin/sleep", Args("60"), CPUAffinity("0"))
    await proc.start()
    assert proc.pid is not None
    assert os.sched_getaffinity(proc.pid) == {0}


async def test_bad_input_is_reported_clearly(manager: ProcessManager, tmp_path: Path) -> None:
    missing = await manager.new_process("ghost", str(tmp_path / "no-such-binary"))
    with pytest.raises(ProcessStartError, match=r"no-such-binary.*No such file"):
        await missing.start()
    assert missing.state is ProcessState.INITIAL and missing.never_started
    with pytest.raises(ProcessExistsError, match="ghost"):
        await manager.new_process("ghost", "/bin/true")
    with pytest.raises(ValueError, match="restarts"):
        await manager.new_process("bad", "/bin/true", Restarts(-2))
    with pytest.raises(ValueError, match="name"):
        await manager.new_process("", "/bin/true")
    with pytest.raises(TypeError, match="process option"):
        await manager.new_process("bad", "/bin/true", "--flag")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="environment variable name"):
        EnvVar({"A=B": "c"})
    with pytest.raises(ValueError, match="not a signal"):
        Opts(stop_signal=999)  # type: ignore[arg-type]
    assert manager.get_process("bad") is None


async def test_delete_forgets_a_process_and_can_stop_it(manager: ProcessManager,
                                                       pids: Pids) -> None:
    kept = await manager.new_process("kept", "/bin/sleep", Args("60"))
    gone = await manager.new_process("gone", "/bin/sleep", Args("60"))
    await kept.start()
    await gone.start()
    assert kept.pid is not None
    pids.add(kept.pid)  # let go of by the manager: ours to end if the test fails
    sub = kept.notifications()
    await manager.delete("kept")
    assert manager.get_process("kept") is None
    assert kept.pid is not None and running(kept.pid)  # still running, just not managed
    assert [e async for e in sub] == []  # the subscription ended
    again = await manager.attach_process("kept-again", "", kept.pid)
    assert again.is_alive()
    await manager.delete("gone", stop=True)
    assert gone.pid is not None and not running(gone.pid)
    await again.kill()


async def test_close_stops_started_processes_but_not_detached_ones(pids: Pids) -> None:
    from sidecar.exec.processmanager import Detach

    async with ProcessManager() as pm:
        bound = await pm.new_process("bound", "/bin/sleep", Args("60"))
        free = await pm.new_process("free", "/bin/sleep", Args("60"), Detach())
        await bound.start()
        await free.start()
        assert free.pid is not None and bound.pid is not None
        pids.add(free.pid)
        assert os.getsid(free.pid) == free.pid  # its own session
        assert os.getpgid(bound.pid) == bound.pid  # its own process group
    assert not running(bound.pid)
    assert running(free.pid)


def test_backoff_delays() -> None:
    backoff = Backoff(base=0.5, cap=30, factor=2)
    assert [backoff.delay(n) for n in range(1, 9)] == [0, 0.5, 1, 2, 4, 8, 16, 30]
    assert backoff.delay(100_000) == 30  # a crash loop of days does not overflow
    assert NO_BACKOFF.delay(50) == 0
    with pytest.raises(ValueError, match="factor"):
        Backoff(factor=0.5)


async def test_start_after_stop_waits_for_the_exit_and_starts_again(
        manager: ProcessManager) -> None:
    proc = await manager.new_process("again", "/bin/sleep", Args("60"))
    await proc.start()
    first = proc.pid
    assert proc.stop()
    await proc.start()
    assert proc.is_alive() and proc.pid != first
    assert first is not None and not running(first)

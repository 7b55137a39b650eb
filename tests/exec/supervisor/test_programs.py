"""Programs under the supervisor (in this process, real processes): output, diffs, status."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from pathlib import Path

import pytest

from sidecar.config import ConfigError
from sidecar.exec.supervisor import (
    ProgramEvent,
    ProgramNotFoundError,
    ProgramStartError,
    Supervisor,
    parse_supervisor_config,
)
from sidecar.health.statuscheck import PluginState, StatusCheck
from tests._wait import until
from tests.exec.supervisor.conftest import MakeSupervisor
from tests.exec.supervisor.helpers import alive

SLEEPER = "/bin/sleep"


def _pids(supervisor: Supervisor) -> dict[str, int | None]:
    return {row["name"]: row["pid"] for row in supervisor.program_rows()}


async def test_output_goes_to_the_log_file_or_to_stdout_behind_the_name(
        make_supervisor: MakeSupervisor, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    log_file = tmp_path / "not" / "yet" / "there.log"
    log_file.parent.mkdir(parents=True)
    log_file.write_text("kept from before\n")
    await make_supervisor(f"""
programs:
  - name: to-file
    executable-path: /bin/sh
    executable-args: ["-c", "echo out; echo err >&2; echo last"]
    logfile-path: {log_file}
  - name: to-stdout
    executable-path: /bin/sh
    executable-args: ["-c", "echo hello; echo oops >&2"]
""")
    await until(lambda: log_file.read_text().count("\n") == 4, 5, what="log file lines")
    assert log_file.read_text().splitlines() == ["kept from before", "out", "err", "last"]
    seen: list[str] = []

    def printed() -> bool:
        seen.extend(capsys.readouterr().out.splitlines())
        return {"[to-stdout] hello", "[to-stdout] oops"} <= set(seen)

    await until(printed, 5, what="prefixed lines on stdout")


async def test_a_new_log_file_and_its_directory_are_created(
        make_supervisor: MakeSupervisor, tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "deep" / "p.log"
    await make_supervisor(f"""
programs:
  - executable-path: /bin/echo
    executable-args: [created]
    logfile-path: {log_file}
""")
    await until(lambda: log_file.exists() and log_file.read_text() == "created\n", 5,
                     what="the log file")


async def test_apply_config_starts_new_stops_removed_restarts_changed_keeps_the_rest(
        make_supervisor: MakeSupervisor, statuscheck: StatusCheck) -> None:
    def program(name: str, seconds: str = "60", extra: str = "") -> str:
        return (f"  - name: {name}\n    executable-path: {SLEEPER}\n"
                f"    executable-args: ['{seconds}']\n{extra}")

    supervisor = await make_supervisor(
        "programs:\n" + program("keep") + program("change") + program("remove")
        + program("report"))
    before = _pids(supervisor)
    assert all(before.values())

    result = await supervisor.apply_config(parse_supervisor_config(
        "programs:\n" + program("keep") + program("change", "61") + program("add")
        + program("report", extra="    fatal: true\n"), "v2"))

    assert (result.started, result.stopped, result.restarted, result.unchanged,
            result.updated, result.failed) == (["add"], ["remove"], ["change"], ["keep"],
                                               ["report"], [])
    after = _pids(supervisor)
    assert after["keep"] == before["keep"] and after["report"] == before["report"]
    assert after["change"] not in (None, before["change"])
    assert after["add"] is not None and "remove" not in after
    remove_pid, change_pid = before["remove"], before["change"]
    assert remove_pid is not None and change_pid is not None
    assert not alive(remove_pid) and not alive(change_pid)
    assert supervisor.get_program_names() == ["keep", "change", "add", "report"]
    # The removed program's check is gone; the updated one is fatal now.
    assert statuscheck.plugin_status("program:remove") is None
    report = statuscheck.plugin_status("program:report")
    assert report is not None and report.fatal
    assert supervisor.get_program("keep") is not None and supervisor.get_program("x") is None


async def test_a_broken_config_raises_and_changes_nothing(
        make_supervisor: MakeSupervisor) -> None:
    supervisor = await make_supervisor(f"""
programs:
  - name: a
    executable-path: {SLEEPER}
    executable-args: ["60"]
""")
    before = _pids(supervisor)
    for text, key in [("programs: [{name: a, executable-path: /bin/true}, "
                       "{name: a, executable-path: /bin/true}]", "programs[1].name"),
                      ("programs: [{nme: b, executable-path: /bin/true}]", "programs[0].nme"),
                      ("programs: [{name: a, executable-path: /bin/true", "invalid YAML")]:
        with pytest.raises(ConfigError, match=f"configmap x: .*{key}".replace("[", r"\[")):
            await supervisor.reload_text(text, "configmap x")
    assert _pids(supervisor) == before and supervisor.config.program_names == ["a"]
    assert supervisor.reloads.rejected == 3
    assert "invalid YAML" in str(supervisor.status()["config"]["last_error"]["error"])


async def test_a_program_name_taken_in_the_process_manager_is_a_config_error(
        tmp_path: Path) -> None:
    from sidecar.exec.processmanager import Args, ProcessManager

    async with ProcessManager() as manager:
        await manager.new_process("web", SLEEPER, Args("60"))
        supervisor = Supervisor(manager=manager)
        try:
            await supervisor.init()
            with pytest.raises(ConfigError, match=r"programs\[0\].name: the process manager "
                                                  "already runs a process named 'web'"):
                await supervisor.reload_text(
                    f"programs: [{{name: web, executable-path: {SLEEPER}}}]", "v2")
            assert supervisor.get_program_names() == []
        finally:
            await supervisor.close()


async def test_listeners_get_every_event_and_crashes_are_marked(
        make_supervisor: MakeSupervisor) -> None:
    events: list[ProgramEvent] = []
    supervisor = await make_supervisor("""
programs:
  - name: crasher
    executable-path: /bin/sh
    executable-args: ["-c", "exit 3"]
    restarts: 1
    autostart: false
  - name: sleeper
    executable-path: /bin/sleep
    executable-args: ["60"]
""")
    supervisor.add_listener(events.append)
    await supervisor.start_program("crasher")

    def states(program: str) -> list[str]:
        return [e.state for e in events if e.program == program]

    await until(lambda: states("crasher")[-1:] == ["gave-up"], 5, what="crasher gives up")
    assert states("crasher") == ["started", "running", "terminated"] * 2 + ["gave-up"]
    crashes = [e for e in events if e.crashed]
    assert [(e.program, e.exit_code, e.restarts) for e in crashes] == [("crasher", 3, 0),
                                                                        ("crasher", 3, 1)]
    await supervisor.stop_program("sleeper")
    stop = [e for e in events if e.program == "sleeper" and e.state == "terminated"]
    assert len(stop) == 1 and not stop[0].crashed and stop[0].exit_code == -15
    assert {e.event_type for e in events} == {"ProcessStatus"}
    assert stop[0].to_dict()["program"] == "sleeper"


async def test_a_crash_loop_fails_readiness_and_fatal_programs_fail_liveness(
        make_supervisor: MakeSupervisor, statuscheck: StatusCheck) -> None:
    await make_supervisor("""
programs:
  - name: loop
    executable-path: /bin/sh
    executable-args: ["-c", "exit 1"]
    restarts: -1
    backoff-base: 20ms
    backoff-cap: 50ms
  - name: ok
    executable-path: /bin/sleep
    executable-args: ["60"]
""")

    def state(name: str) -> PluginState | None:
        status = statuscheck.plugin_status(f"program:{name}")
        return status.state if status is not None else None

    await until(lambda: state("loop") is PluginState.ERROR, 5, what="loop ERROR")
    status = statuscheck.plugin_status("program:loop")
    assert status is not None and "crash-looping" in str(status.error) and not status.fatal
    assert state("ok") is PluginState.OK
    assert statuscheck.agent_status().live  # non-fatal: readiness only

    supervisor = await make_supervisor("""
programs:
  - name: fatal-loop
    executable-path: /bin/sh
    executable-args: ["-c", "exit 1"]
    restarts: -1
    backoff-base: 20ms
    fatal: true
""")
    await until(lambda: state("fatal-loop") is PluginState.ERROR, 5, what="fatal ERROR")
    assert not statuscheck.agent_status().live
    await supervisor.stop_program("fatal-loop")  # stopped on purpose: healthy again
    await until(lambda: state("fatal-loop") is PluginState.OK, 5, what="OK once stopped")


async def test_a_crash_loop_that_then_runs_long_enough_is_healthy_again(
        make_supervisor: MakeSupervisor, statuscheck: StatusCheck, tmp_path: Path) -> None:
    count = tmp_path / "count"
    supervisor = await make_supervisor(f"""
programs:
  - name: flaky
    executable-path: /bin/sh
    executable-args: ["-c", "n=$(cat {count} 2>/dev/null || echo 0); echo $((n+1)) > {count};
                             [ $n -ge 3 ] && exec sleep 60; exit 1"]
    restarts: -1
    backoff-base: 10ms
    backoff-reset-after: 400ms
""")

    def state() -> PluginState | None:
        status = statuscheck.plugin_status("program:flaky")
        return status.state if status is not None else None

    await until(lambda: state() is PluginState.ERROR, 5, what="crash-looping")
    # No event comes when it has run for reset-after: the recovery timer tells, and not
    # before the run has lasted reset-after.
    await until(lambda: state() is PluginState.OK, timeout=10, what="healthy again")
    assert supervisor.program_row("flaky")["uptime"] >= 0.4


async def test_start_stop_restart_and_unknown_or_unstartable_programs(
        make_supervisor: MakeSupervisor, statuscheck: StatusCheck, tmp_path: Path) -> None:
    supervisor = await make_supervisor(f"""
programs:
  - name: web
    executable-path: {SLEEPER}
    executable-args: ["60"]
  - name: later
    executable-path: {SLEEPER}
    executable-args: ["60"]
    autostart: false
  - name: missing
    executable-path: {tmp_path}/no-such-binary
""")
    rows = {r["name"]: r for r in supervisor.program_rows()}
    assert rows["later"]["state"] == "stopped" and rows["later"]["pid"] is None
    assert rows["missing"]["state"] == "failed" and not rows["missing"]["healthy"]
    assert "No such file or directory" in rows["missing"]["error"]
    missing = statuscheck.plugin_status("program:missing")
    assert missing is not None and missing.state is PluginState.ERROR

    assert await supervisor.start_program("web") is False  # already running
    first = supervisor.program_row("web")["pid"]
    assert await supervisor.stop_program("web") is True
    assert supervisor.program_row("web")["state"] == "stopped" and not alive(first)
    assert await supervisor.stop_program("web") is False
    assert await supervisor.start_program("web") is True
    second = supervisor.program_row("web")["pid"]
    await supervisor.restart_program("web")
    third = supervisor.program_row("web")["pid"]
    assert len({first, second, third}) == 3 and alive(third)
    assert await supervisor.start_program("later") is True

    with pytest.raises(ProgramStartError, match="program missing could not be started"):
        await supervisor.start_program("missing")
    with pytest.raises(ProgramNotFoundError, match="programs: later, missing, web"):
        await supervisor.stop_program("nope")
    await until(lambda: (web := statuscheck.plugin_status("program:web")) is not None
                and web.state is PluginState.OK, 5, what="web OK")


async def test_close_stops_every_program_within_its_stop_timeout(
        make_supervisor: MakeSupervisor, statuscheck: StatusCheck, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # The shells touch a file once their traps are set: a signal before that would
    # find them with the default action and prove nothing.
    supervisor = await make_supervisor(f"""
programs:
  - name: polite
    executable-path: /bin/sleep
    executable-args: ["60"]
    stop-timeout: 30s
  - name: stubborn
    executable-path: /bin/sh
    executable-args: ["-c", "trap '' TERM INT; touch {tmp_path}/stubborn;
                             sleep 60 & wait; sleep 60"]
    stop-timeout: 500ms
  - name: interrupted
    executable-path: /bin/sh
    executable-args: ["-c", "trap 'exit 0' INT; trap '' TERM; touch {tmp_path}/interrupted;
                             while :; do sleep 0.05; done"]
    stop-signal: SIGINT
    stop-timeout: 30s
""")
    await until(lambda: (tmp_path / "stubborn").exists()
                     and (tmp_path / "interrupted").exists(), 5, what="the shells' traps set")
    pids = [p for p in _pids(supervisor).values() if p is not None]
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, "sidecar.exec"):
        await supervisor.close()
    took = time.monotonic() - began
    assert not [p for p in pids if alive(p)]
    # Only the stubborn one needed SIGKILL, at its own 500 ms: polite and interrupted ended
    # on their stop signals, or close would have waited out their 30 s.
    killed = [r.getMessage() for r in caplog.records if "sending SIGKILL" in r.getMessage()]
    assert len(killed) == 1 and killed[0].startswith("process stubborn "), killed
    assert "did not stop within 0.5s of SIGTERM" in killed[0]
    assert 0.5 <= took < 10
    assert statuscheck.plugin_status("program:polite") is None
    await supervisor.close()  # idempotent
    with pytest.raises(Exception, match="closed"):
        await supervisor.reload_text("programs: []", "late")


async def test_the_stop_budget_covers_the_longest_stop_timeout(
        make_supervisor: MakeSupervisor) -> None:
    class Agent:
        stop_timeout = 5.0

    agent = Agent()
    supervisor = await make_supervisor("""
programs:
  - {executable-path: /bin/sleep, executable-args: ["60"], stop-timeout: 1s}
""")
    supervisor.cover_stop_timeout(agent)
    assert agent.stop_timeout == 5.0  # 1 s + margin fits
    await supervisor.reload_text("""
programs:
  - {executable-path: /bin/sleep, executable-args: ["60"], stop-timeout: 20s}
""", "v2")
    assert agent.stop_timeout == supervisor.stop_budget() == 22.0


async def test_apply_before_start_only_replaces_the_config() -> None:
    supervisor = Supervisor()
    try:
        result = await supervisor.reload_text(
            f"programs: [{{name: a, executable-path: {SLEEPER}, executable-args: ['60']}}]",
            "early")
        assert result.started == ["a"] and supervisor.get_program_names() == []
        await supervisor.init()
        assert supervisor.program_row("a")["running"]
    finally:
        await supervisor.close()


async def test_a_failed_init_leaves_nothing_running() -> None:
    from sidecar.exec.processmanager import Args, ProcessManager

    async with ProcessManager() as manager:
        await manager.new_process("web", SLEEPER, Args("60"))
        supervisor = Supervisor(parse_supervisor_config(
            f"programs: [{{name: other, executable-path: {SLEEPER}, executable-args: ['60']}},"
            f" {{name: web, executable-path: {SLEEPER}}}]", "start.conf"), manager=manager)
        with pytest.raises(ConfigError, match=r"start.conf: programs\[1\].name"):
            await supervisor.init()
        # Nothing was started (the check comes first), and the hooks' tasks are gone
        # (the autouse fixture fails a test that leaves tasks).
        assert manager.get_process("other") is None
        await supervisor.close()


async def test_an_operation_runs_to_its_end_when_its_caller_gives_up(
        make_supervisor: MakeSupervisor, statuscheck: StatusCheck, tmp_path: Path) -> None:
    """A restart cancelled half-way (an HTTP request past request-timeout) used to leave
    the program killed and never started again, healthy, with restarts: -1 not applied."""
    ready = tmp_path / "ready"
    supervisor = await make_supervisor(f"""
programs:
  - name: stubborn
    executable-path: /bin/sh
    executable-args: ["-c", "trap '' TERM; touch {ready}; while true; do sleep 0.1; done"]
    stop-timeout: 1s
    restarts: -1
""")
    await until(ready.exists, 5, what="the trap set")
    first = supervisor.program_row("stubborn")["pid"]
    caller = asyncio.create_task(supervisor.restart_program("stubborn"))
    await until(lambda: supervisor.program_row("stubborn")["pending"] == "restart", 5,
                what="the restart pending")
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert supervisor.program_row("stubborn")["pending"] == "restart"  # it runs on
    await until(lambda: supervisor.program_row("stubborn")["pending"] is None, 10,
                what="the restart finished")
    row = supervisor.program_row("stubborn")
    assert row["running"] and row["pid"] not in (None, first) and row["healthy"], row
    assert not alive(first)
    # restarts: -1 still applies to what the restart started.
    second = row["pid"]
    os.kill(second, signal.SIGKILL)
    await until(lambda: supervisor.program_row("stubborn")["pid"] not in (None, second), 10,
                what="the automatic restart")
    assert supervisor.program_row("stubborn")["restarts"] == 1


async def test_a_program_stopped_behind_the_supervisors_back_is_never_healthy(
        make_supervisor: MakeSupervisor, statuscheck: StatusCheck) -> None:
    supervisor = await make_supervisor(f"""
programs:
  - name: web
    executable-path: {SLEEPER}
    executable-args: ["60"]
    restarts: -1
""")
    process = supervisor.get_program("web")
    assert process is not None
    await process.stop_and_wait()  # the process manager's stop, not the supervisor's

    def down() -> bool:
        status = statuscheck.plugin_status("program:web")
        return status is not None and status.state is PluginState.ERROR

    await until(down, 5, what="program:web ERROR")
    row = supervisor.program_row("web")
    assert not row["running"] and not row["healthy"]
    assert row["error"] == "not running: its process was stopped and not started again"
    assert await supervisor.start_program("web") is True
    assert supervisor.program_row("web")["healthy"]

"""The supervisor inside the real ``sidecar`` command: the example, hooks, REST, CLI, SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sidecar.builder import example_config_dir
from sidecar.exec.supervisor import HOOK_VARIABLES
from tests._wait import wait_until
from tests.exec.helpers import assert_sidecar_as_pid_1_reaps
from tests.exec.supervisor.helpers import alive, group_members, processes_with
from tests.sidecar_proc import SidecarProcess, request

EXAMPLE = example_config_dir().parent / "optional" / "supervisor.conf"
ROOT = Path(__file__).resolve().parents[3]


def _programs(sidecar: SidecarProcess) -> dict[str, dict[str, object]]:
    status, rows = sidecar.get("/supervisor/programs")
    assert status == 200, rows
    return {row["name"]: row for row in rows}


def _running(sidecar: SidecarProcess, *names: str) -> dict[str, dict[str, object]]:
    def check() -> dict[str, dict[str, object]] | None:
        rows = _programs(sidecar)
        return rows if all(rows.get(n, {}).get("running") for n in names) else None
    result = wait_until(check, 10, f"programs {names} running")
    assert isinstance(result, dict)
    return result


def _cli(sidecar: SidecarProcess, *args: str,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sidecar", "programs", *args,
                           "--url", sidecar.url], capture_output=True, text=True, timeout=30,
                          check=False, cwd=ROOT, env={**os.environ, **(env or {})})


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def test_the_seed_example_configuration_runs_as_written(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    shutil.copy(EXAMPLE, config_dir / "supervisor.conf")
    heartbeat_log = Path("/tmp/supervisor/heartbeat.log")
    events_log = Path("/tmp/supervisor/events.log")
    heartbeat_from, events_from = _size(heartbeat_log), _size(events_log)
    sidecar = SidecarProcess(config_dir)
    sidecars.append(sidecar)
    sidecar.start()

    rows = _running(sidecar, "heartbeat", "sleep")
    assert rows["heartbeat"]["logfile"] == str(heartbeat_log)
    wait_until(lambda: sidecar.get("/readiness")[0] == 200, 10, "readiness")
    plugins = sidecar.get("/readiness")[1]["plugins"]
    assert plugins["program:heartbeat"]["state"] == plugins["program:sleep"]["state"] == 1
    assert plugins["supervisor"]["state"] == 1 and "process-manager" in plugins

    # The program writes its log file; the hook sees every program's events.
    wait_until(lambda: re.search(r"heartbeat \d+", heartbeat_log.read_text()[heartbeat_from:]),
               10, "a heartbeat line")
    pids = {name: row["pid"] for name, row in rows.items()}
    expected = {f"heartbeat started pid={pids['heartbeat']}",
                f"sleep started pid={pids['sleep']}"}
    wait_until(lambda: expected <= set(events_log.read_text()[events_from:].splitlines()), 10,
               "hook lines for both programs")

    assert sidecar.stop() == 0
    assert "stop timeout raised from 5s to 7s" in sidecar.output()
    assert not [pid for pid in pids.values() if isinstance(pid, int) and alive(pid)]


def test_a_hook_sees_exactly_the_supervisor_variables_not_the_sidecars(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    dump = config_dir / "hook-env.log"
    (config_dir / "supervisor.conf").write_text(f"""
programs:
  - {{name: one-shot, executable-path: /bin/true}}
hooks:
  - cmd: /usr/bin/env
    logfile-path: {dump}
""")
    sidecar = SidecarProcess(config_dir, env={"SIDECAR_SECRET": "keep-out",
                                              "PATH": os.environ["PATH"]})
    sidecars.append(sidecar)
    sidecar.start()
    wait_until(lambda: dump.exists() and dump.read_text().count("\n") >= 8, 10,
               "two hook runs (started, terminated)")
    sidecar.stop()
    lines = dump.read_text().splitlines()
    assert len(lines) % 4 == 0
    for start in range(0, len(lines), 4):
        record = dict(line.split("=", 1) for line in lines[start:start + 4])
        assert set(record) == set(HOOK_VARIABLES), record
        assert record["SUPERVISOR_PROCESS_NAME"] == "one-shot"
    assert not any(line.startswith(("PATH=", "SIDECAR_SECRET=", "HOME=", "PWD="))
                   for line in lines)


def test_programs_over_rest_and_the_command_line(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    (config_dir / "http.conf").write_text("admin-allow: ['10.99.0.0/16']\n"
                                          "admin-token: s3cret\n")
    (config_dir / "supervisor.conf").write_text("""
programs:
  - {name: web, executable-path: /bin/sleep, executable-args: ["600"]}
  - {name: batch, executable-path: /bin/sleep, executable-args: ["600"], autostart: false}
""")
    sidecar = SidecarProcess(config_dir)
    sidecars.append(sidecar)
    sidecar.start()
    web = _running(sidecar, "web")["web"]
    assert set(web) >= {"name", "pid", "state", "restarts", "uptime"}
    assert web["restarts"] == 0 and isinstance(web["uptime"], float)

    # Listing is open; control is an admin route (this peer is not in admin-allow).
    url = f"{sidecar.url}/supervisor/programs/web/restart"
    assert request("POST", url)[0] == 401
    assert request("POST", url, headers={"Authorization": "Bearer wrong"})[0] == 403
    status, body = request("POST", url, headers={"Authorization": "Bearer s3cret"})
    assert status == 200 and body["changed"] and body["program"]["pid"] != web["pid"]
    assert sidecar.get("/supervisor/programs/nope")[0] == 404

    listing = _cli(sidecar)
    assert listing.returncode == 0, listing.stderr
    header, *lines = listing.stdout.splitlines()
    assert header.split() == ["NAME", "STATE", "PID", "RESTARTS", "UPTIME", "EXIT", "HEALTH"]
    assert [line.split()[0] for line in lines] == ["batch", "web"]
    assert lines[0].split()[1] == "stopped"

    refused = _cli(sidecar, "start", "batch")
    assert refused.returncode == 1 and "401" in refused.stderr and "--token" in refused.stderr
    started = _cli(sidecar, "start", "batch", env={"SIDECAR_ADMIN_TOKEN": "s3cret"})
    assert started.returncode == 0, started.stderr
    assert re.fullmatch(r"batch: started \(\w+, pid \d+\)\n", started.stdout)
    stopped = _cli(sidecar, "stop", "batch", "--token", "s3cret")
    assert stopped.returncode == 0 and stopped.stdout.startswith("batch: stopped")
    unknown = _cli(sidecar, "restart", "nope", "--token", "s3cret")
    assert unknown.returncode == 1 and "no program named 'nope'" in unknown.stderr
    raw = _cli(sidecar, "list", "--json")
    assert {row["name"] for row in json.loads(raw.stdout)} == {"web", "batch"}

    overview = sidecar.get("/supervisor")[1]
    assert overview["config"]["watching"] == str(config_dir / "supervisor.conf")
    assert [row["name"] for row in overview["programs"]] == ["batch", "web"]

    metrics = request("GET", f"{sidecar.url}/metrics")[1]
    assert 'cninfra_supervisor_program_healthy{program="web"} 1.0' in metrics
    assert 'cninfra_program_up{program="web"} 1.0' in metrics  # the process manager's view
    assert 'cninfra_supervisor_reloads_total{result="rejected"} 0.0' in metrics


def test_no_program_or_hook_outlives_a_sigterm(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    marker = f"sv-{uuid.uuid4().hex}"
    deaf_ready = config_dir / "deaf-ready"  # touched once its trap is set
    (config_dir / "supervisor.conf").write_text(f"""
programs:
  - name: plain
    executable-path: /bin/sh
    executable-args: ["-c", "sleep 600; : {marker}"]
  - name: forks
    executable-path: /bin/sh
    executable-args: ["-c", "sh -c 'sleep 600; : {marker}' & sleep 600; : {marker}"]
    restarts: -1
  - name: deaf
    executable-path: /bin/sh
    executable-args: ["-c", "trap '' TERM; touch {deaf_ready}; sleep 600; : {marker}"]
    stop-timeout: 1s
hooks:
  - cmd: /bin/sh
    cmd-args: ["-c", "sleep 600; : {marker}"]
    timeout: 10m
""")
    sidecar = SidecarProcess(config_dir)
    sidecars.append(sidecar)
    sidecar.start()
    rows = _running(sidecar, "plain", "forks", "deaf")
    groups = [int(row["pid"]) for row in rows.values()]  # type: ignore[call-overload]
    wait_until(lambda: len(processes_with(marker)) >= 7 and deaf_ready.exists(), 10,
               "programs, their children and hooks running, deaf's trap set")
    assert sidecar.proc is not None
    began = time.monotonic()
    sidecar.signal(signal.SIGTERM)
    assert sidecar.proc.wait(15) == 0, sidecar.output()
    took = time.monotonic() - began
    assert not processes_with(marker), [(p, Path(f"/proc/{p}/cmdline").read_bytes())
                                        for p in processes_with(marker)]
    assert not [pid for pgid in groups for pid in group_members(pgid)]
    # deaf waited for its 1 s stop-timeout, then got SIGKILL; the others (5 s default
    # stop-timeout) ended on SIGTERM, and the hooks were killed without a wait.
    assert took >= 1.0
    killed = [line for line in sidecar.output().splitlines() if "sending SIGKILL" in line]
    assert len(killed) == 1 and "process deaf " in killed[0], killed
    assert "did not stop within 1s of SIGTERM" in killed[0]


def test_the_programs_command_says_when_there_is_no_supervisor(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    sidecar = SidecarProcess(config_dir)
    sidecars.append(sidecar)
    sidecar.start()
    done = _cli(sidecar, "list")
    assert done.returncode == 1
    assert done.stderr.strip() == f"sidecar: {sidecar.url} runs no supervisor (it has no " \
                                  "supervisor.conf)"
    assert "program" not in json.dumps(sidecar.get("/readiness")[1]["plugins"])


def test_as_pid_1_the_orphans_of_programs_are_reaped(config_dir: Path) -> None:
    # No process-manager.conf: the supervisor's process manager reaps as PID 1 all the same.
    (config_dir / "supervisor.conf").write_text("""
programs:
  - name: orphaner
    executable-path: /bin/sh
    executable-args: ["-c", "sleep 0.1 & exit 0"]
    restarts: -1
    backoff-base: 50ms
    backoff-cap: 100ms
""")
    assert_sidecar_as_pid_1_reaps(config_dir, zombies=3)

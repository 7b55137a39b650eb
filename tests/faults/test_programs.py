"""Programs in trouble: one crash-looping, one whose log file is on a full filesystem.

Both run once under the process manager (a template) and once under the
supervisor (supervisor.conf); the sidecar must keep answering its probes, show
the trouble in its status, keep supervising (restarts with backoff), and
recover by itself once the cause is gone.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests._wait import wait_until
from tests.probes import ProbePoller
from tests.sidecar_proc import SidecarProcess

#: A program that runs only while ``argv[1]`` does not exist (a missing dependency).
NEEDS_NO_FILE = ("import os, sys, time\n"
                 "if os.path.exists(sys.argv[1]): sys.exit(3)\n"
                 "while True: time.sleep(1)\n")

#: A program that runs until ``argv[1]`` exists, then exits (and, restarted, at once).
EXITS_ONCE_FILE = ("import os, sys, time\n"
                   "while not os.path.exists(sys.argv[1]): time.sleep(0.05)\n"
                   "sys.exit(3)\n")

#: Writes a line every 5 ms to stdout (its log file). The limit makes every write past
#: LIMIT bytes of the file fail with EFBIG, as ENOSPC would on a full filesystem; the
#: program dies of it, as most do when they cannot log.
LIMIT = 16 * 1024
LOGGER = ("import resource, time\n"
          f"resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, {LIMIT}))\n"
          "while True:\n"
          "    print('tick', time.time(), flush=True)\n"
          "    time.sleep(0.005)\n")


@dataclass(frozen=True)
class Runner:
    """How a program is configured and counted, for the process manager or the supervisor."""

    kind: str

    @property
    def check(self) -> str:
        return "process:" if self.kind == "process-manager" else "program:"

    def configure(self, config_dir: Path, name: str, code: str, arg: str,
                  logfile: Path | None = None) -> None:
        args = ["-c", code, arg]
        if self.kind == "process-manager":
            templates = config_dir / "templates"
            templates.mkdir(exist_ok=True)
            options: dict[str, Any] = {
                "args": args, "restart": -1, "run_on_startup": True,
                "backoff_base": "50ms", "backoff_cap": "400ms", "backoff_reset_after": "1s"}
            if logfile is not None:
                options |= {"out_file": str(logfile), "err_file": str(logfile)}
            (templates / f"{name}.json").write_text(json.dumps(
                {"name": name, "cmd": sys.executable, "p_options": options}))
            (config_dir / "process-manager.conf").write_text(
                f"template-path: {templates}\nstatus-interval: 200ms\n")
        else:
            program: dict[str, Any] = {
                "name": name, "executable-path": sys.executable, "executable-args": args,
                "restarts": -1, "backoff-base": "50ms", "backoff-cap": "400ms",
                "backoff-reset-after": "1s"}
            if logfile is not None:
                program["logfile-path"] = str(logfile)
            (config_dir / "supervisor.conf").write_text(json.dumps({"programs": [program]}))
        (config_dir / "statuscheck.conf").write_text("probe-interval: 200ms\n")

    def restarts(self, proc: SidecarProcess, name: str) -> int:
        if self.kind == "supervisor":
            return int(proc.get(f"/supervisor/programs/{name}")[1]["restarts"])
        _, text = proc.get("/metrics")
        found = re.search(rf'^cninfra_program_restarts_total{{program="{name}"}} (\S+)$',
                          str(text), re.M)
        assert found, f"no restart count of {name} in /metrics"
        return int(float(found.group(1)))


RUNNERS = [Runner("process-manager"), Runner("supervisor")]


def start(config_dir: Path, sidecars: list[SidecarProcess]) -> SidecarProcess:
    proc = SidecarProcess(config_dir)
    sidecars.append(proc)
    return proc.start()


@pytest.mark.parametrize("runner", RUNNERS, ids=lambda r: r.kind)
def test_a_crash_looping_program(runner: Runner, config_dir: Path, tmp_path: Path,
                                 sidecars: list[SidecarProcess]) -> None:
    broken = tmp_path / "broken"
    broken.touch()  # crash-looping from the start
    runner.configure(config_dir, "flaky", NEEDS_NO_FILE, str(broken))
    check = runner.check + "flaky"
    proc = start(config_dir, sidecars)

    with ProbePoller(proc.url) as probes:
        looping = probes.wait_for(lambda a: a.plugin_state(check) == 2, 15,
                                  f"{check} ERROR")
        assert looping.status == 503
        assert "crash-looping" in looping.plugins[check]["error"]
        assert "exit code 3" in looping.plugins[check]["error"]
        # Supervision goes on, and the backoff keeps it from spinning: at most one restart
        # per backoff-base (50 ms) even at the start, fewer once the cap (400 ms) is reached.
        first, begin = runner.restarts(proc, "flaky"), time.monotonic()
        wait_until(lambda: runner.restarts(proc, "flaky") >= first + 5, 10, "five restarts")
        rate = (runner.restarts(proc, "flaky") - first) / (time.monotonic() - begin)
        assert rate < 1 / 0.05, f"{rate:.1f} restarts/s"

        broken.unlink()  # the cause is gone: the next run stays up
        probes.wait_for(lambda a: a.status == 200 and a.plugin_state(check) == 1, 15,
                        "readiness 200 once the program runs for backoff-reset-after")

    probes.assert_always_answered()
    # A crash loop is non-fatal by default: never a reason for the kubelet to restart us.
    assert probes.statuses("/liveness") == {200}, probes.latency_summary()
    assert proc.stop() == 0


@pytest.mark.parametrize("runner", RUNNERS, ids=lambda r: r.kind)
def test_a_program_log_on_a_full_filesystem(runner: Runner, config_dir: Path, tmp_path: Path,
                                            sidecars: list[SidecarProcess]) -> None:
    logfile = tmp_path / "logs" / "writer.log"
    logfile.parent.mkdir()
    logfile.write_bytes(b"old line\n" * (LIMIT // 9 + 1))  # already as large as it may grow
    runner.configure(config_dir, "writer", LOGGER, "-", logfile=logfile)
    check = runner.check + "writer"
    proc = start(config_dir, sidecars)

    with ProbePoller(proc.url) as probes:
        full = probes.wait_for(lambda a: a.plugin_state(check) == 2, 15,
                               f"{check} ERROR while its log cannot grow")
        assert "crash-looping" in full.plugins[check]["error"]
        count = runner.restarts(proc, "writer")
        wait_until(lambda: runner.restarts(proc, "writer") >= count + 3, 10,
                   "restarts go on while the filesystem is full")
        assert proc.proc is not None and proc.proc.poll() is None

        logfile.write_bytes(b"")  # space freed (as logrotate's copytruncate does)
        probes.wait_for(lambda a: a.status == 200 and a.plugin_state(check) == 1, 15,
                        "readiness 200 once the log can grow again")
        wait_until(lambda: logfile.read_bytes().count(b"tick") >= 10, 5,
                   "the program logging again")
        # ...until the file reaches the limit again: then the trouble is back, and shown.
        probes.wait_for(lambda a: a.plugin_state(check) == 2, 60, f"{check} ERROR again")

    probes.assert_always_answered()
    assert probes.statuses("/liveness") == {200}, probes.latency_summary()
    assert proc.stop() == 0


def test_a_fatal_crash_loop_fails_readiness_at_once_and_liveness_past_its_grace(
        config_dir: Path, tmp_path: Path, sidecars: list[SidecarProcess]) -> None:
    broken = tmp_path / "broken"
    Runner("supervisor").configure(config_dir, "vital", EXITS_ONCE_FILE, str(broken))
    program = json.loads((config_dir / "supervisor.conf").read_text())
    program["programs"][0]["fatal"] = True
    (config_dir / "supervisor.conf").write_text(json.dumps(program))
    (config_dir / "statuscheck.conf").write_text(
        "probe-interval: 200ms\nliveness:\n  grace:\n    'program:*': 2s\n")
    check = "program:vital"
    proc = start(config_dir, sidecars)

    with ProbePoller(proc.url) as probes:
        probes.wait_for(lambda a: a.status == 200, 15, "readiness 200")
        broken.touch()  # from now on it crash-loops
        looping = probes.wait_for(lambda a: a.plugin_state(check) == 2, 15, f"{check} ERROR")
        assert looping.status == 503  # readiness: at once
        dead = probes.wait_for(lambda a: a.status == 503, 15, "liveness 503 past the grace",
                               path="/liveness")
        assert dead.plugin_state(check) == 2 and check not in dead.body["group"].get("in_grace", {})
        since_error = [a for a in probes.snapshot("/liveness", since=looping.sent)
                       if a.sent < dead.sent and a.plugin_state(check) == 2]
        # Meanwhile liveness said 200, and when the crash loop would count.
        assert since_error, "no liveness answer within the grace"
        assert all(a.status == 200 and check in a.body["group"].get("in_grace", {})
                   for a in since_error)
        assert dead.sent - since_error[0].sent > 1.0  # 2 s of grace, less the polling gaps

        broken.unlink()
        probes.wait_for(lambda a: a.status == 200 and a.plugin_state(check) == 1, 15,
                        "readiness 200 once the program runs for backoff-reset-after")
        probes.wait_for(lambda a: a.status == 200, 5, "liveness 200 again", path="/liveness")

    probes.assert_always_answered()
    assert proc.stop() == 0

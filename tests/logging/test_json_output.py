"""``--log-format json`` end to end: every line a real sidecar writes is one JSON object,
programs' output included, however much and whatever they write; ``plugin`` names the
plugin that logged."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from sidecar.logging.output import DEFAULT_LIMITS
from tests._wait import wait_until
from tests.sidecar_proc import SidecarProcess, request, run_sidecar

NOISY = str(Path(__file__).with_name("noisy.py"))
REQUIRED = {"time", "level", "logger", "message"}


def program(name: str, *args: str, **more: object) -> dict[str, object]:
    return {"name": name, "executable-path": sys.executable,
            "executable-args": [NOISY, *args], **more}


def records(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` as JSON: strict UTF-8, one object per line, or the test fails."""
    found = []
    for number, line in enumerate(path.read_bytes().decode("utf-8").splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            raise AssertionError(f"{path.name} line {number} is not JSON: {line[:300]!r}") \
                from None
        assert isinstance(record, dict), (number, line[:300])
        assert set(record) >= REQUIRED, (number, line[:300])
        found.append(record)
    return found


def output_of(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("event") == "program.output" and r["program"] == name]


def test_every_line_is_json_while_programs_flood_and_write_junk(
        config_dir: Path, tmp_path: Path, sidecars: list[SidecarProcess]) -> None:
    done = tmp_path / "flood.done"
    (config_dir / "supervisor.conf").write_text(yaml.safe_dump({"programs": [
        program("flood", "flood", "10000", "3", str(done)),
        program("junk", "junk"),
        program("long", "long"),
    ]}))
    proc = SidecarProcess(config_dir, "--log-format", "json", separate_stderr=True,
                          env={"MICROSERVICE_LABEL": "noisy"})
    sidecars.append(proc)
    proc.start()

    # The probes answer while 10,000 lines a second come in: measured during the flood.
    wait_until(lambda: '"flood 1"' in proc.stdout(), 15, "the flood begun")
    answers: list[int] = []

    def flood_over() -> bool:
        for path in ("/liveness", "/readiness"):
            try:
                answers.append(proc.get(path, timeout=10)[0])
            except OSError as exc:  # counted, not retried: a probe that fails is the failure
                answers.append(-1)
                print(f"{path}: {exc}")
        return done.exists()

    wait_until(flood_over, 60, "the flood finished", interval=0.05)
    sent, seconds = done.read_text().split()
    assert int(sent) == 30_000 and float(seconds) < 4.5  # it did flood at ~10,000 lines/s
    assert len(answers) >= 10 and set(answers) == {200}, answers

    # Every flood line is either written or counted in a summary (at most a second late).
    def accounted() -> tuple[int, int] | None:
        rows = [json.loads(line) for line in proc.stdout().splitlines()]
        written = len(output_of(rows, "flood"))
        dropped = sum(r["dropped"] for r in rows if r.get("event") == "program.output.dropped")
        return (written, dropped) if written + dropped == 30_000 else None

    written, dropped = wait_until(accounted, 15, "every flood line written or counted")
    limits = DEFAULT_LIMITS
    assert dropped > 0 and written < limits.burst + limits.rate * 5, (written, dropped)
    wait_until(lambda: proc.stdout().count('"junk done"') == 2, 15, "junk written")
    wait_until(lambda: '"long done"' in proc.stdout(), 15, "long lines written")
    assert proc.stop() == 0

    out, err = records(proc.log_path), records(proc.stderr_path)
    assert err and all(r.get("event") != "program.output" for r in err)
    assert {r["logger"] for r in out} == {"sidecar.program"}  # programs' output on stdout
    for row in out:
        assert row["plugin"] == "supervisor" and row["service_label"] == "noisy"
    flood = output_of(out, "flood")
    assert [r["message"] for r in flood[:3]] == ["flood 1", "flood 2", "flood 3"]
    assert {r["stream"] for r in flood} == {"stdout"} and {r["level"] for r in flood} == {"info"}
    summaries = [r for r in out if r.get("event") == "program.output.dropped"]
    assert summaries and all(r["program"] == "flood" and r["level"] == "warning" and
                             f"{r['dropped']} output lines dropped" in r["message"]
                             for r in summaries)

    junk = output_of(out, "junk")
    assert {r["stream"] for r in junk} == {"stdout", "stderr"}
    messages = [r["message"] for r in junk]
    assert "\ufffd\ufffd\ufffd invalid start bytes" in messages
    assert "NUL \x00 BEL \x07 ESC \x1b[31m red \x1b[0m DEL \x7f" in messages
    assert "a lone CR \r in the middle, a tab \t, quotes \" and a backslash \\" in messages
    assert "line separators \u2028 \u2029 and \x85" in messages

    cut = {r["message"][0]: r for r in output_of(out, "long") if "truncated_from" in r}
    assert cut["x"]["truncated_from"] == 65536 and cut["y"]["truncated_from"] == 200_000
    assert cut["x"]["message"] == "x" * limits.max_line
    # A character the cut falls inside is left out, not replaced.
    assert cut["€"]["message"] == "€" * (limits.max_line // 3)
    assert cut["€"]["truncated_from"] == 12_000


def test_text_mode_keeps_the_name_prefix_and_the_same_limits(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    (config_dir / "supervisor.conf").write_text(yaml.safe_dump({"programs": [
        program("burst", "burst", "5000")]}))
    proc = SidecarProcess(config_dir, separate_stderr=True)
    sidecars.append(proc)
    proc.start()
    wait_until(lambda: "[burst] burst done" in proc.stdout() and
               "lines dropped by the sidecar" in proc.stdout(), 20, "the burst and its summary")
    lines = proc.stdout().splitlines()
    long_line = "[burst] " + "z" * DEFAULT_LIMITS.max_line + "… [truncated from 70000 bytes]"
    assert lines[0] == long_line
    written = sum(1 for line in lines if line.startswith("[burst] burst ") and
                  line != "[burst] burst done")
    dropped = [line for line in lines if "lines dropped by the sidecar" in line]
    assert len(dropped) == 1, dropped
    count = int(dropped[0].removeprefix("[burst] (").split()[0])
    assert written + count == 5000 and count > 0
    assert dropped[0].endswith("lines dropped by the sidecar: more than 1000 lines/s "
                               "(bursts of 2000))")


def test_plugin_is_the_plugin_that_logged(config_dir: Path,
                                          sidecars: list[SidecarProcess]) -> None:
    # A program that ignores SIGTERM: its stop at shutdown logs the SIGKILL. Restarted over
    # REST first, so the process that is stopped then was started by a REST handler.
    (config_dir / "supervisor.conf").write_text(yaml.safe_dump({"programs": [{
        "name": "stubborn", "executable-path": "/bin/sh", "stop-timeout": "300ms",
        "executable-args": ["-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"]}]}))
    proc = SidecarProcess(config_dir, "--log-format", "json", "--log-level", "debug")
    sidecars.append(proc)
    proc.start()
    status, body = request("POST", f"{proc.url}/supervisor/programs/stubborn/restart")
    assert status == 200 and body["changed"], body
    pid = body["program"]["pid"]
    assert request("PUT", f"{proc.url}/log/sidecar.agent/debug")[0] == 200
    # A state the status watcher (the process manager's task) reports to the supervisor.
    wait_until(lambda: f"program stubborn: sleeping (pid {pid})" in proc.output(), 15,
               "the restarted program's state read")
    proc.signal(signal.SIGTERM)
    assert proc.proc is not None and proc.proc.wait(30) == 0

    rows = [json.loads(line) for line in proc.output().splitlines()]
    by_logger: dict[str, set[str | None]] = {}
    for row in rows:
        by_logger.setdefault(row["logger"], set()).add(row.get("plugin"))
    # Lines logged while a plugin's code runs name it: never the REST server that called
    # the handler, nor the process manager whose watcher reported the event. (Lines of
    # the agent and the builder, outside any plugin, have no plugin field.)
    for logger in ("sidecar.supervisor", "sidecar.exec.processmanager", "sidecar.program"):
        assert by_logger[logger] <= {"supervisor", None}, (logger, by_logger[logger])
    assert by_logger["sidecar.rest"] == {"rest"}
    killed = next(r for r in rows if f"(pid {pid}) did not stop within" in r["message"])
    assert killed["plugin"] == "supervisor"
    sleeping = next(r for r in rows if f"stubborn: sleeping (pid {pid})" in r["message"])
    assert sleeping["plugin"] == "supervisor"
    restart = next(r for r in rows if r.get("event") == "program.restart")
    assert restart["plugin"] == "supervisor"
    level_set = next(r for r in rows if r.get("event") == "log.level.set")
    assert level_set["plugin"] == "logmanager"


def test_a_start_that_fails_on_config_still_writes_json(config_dir: Path) -> None:
    (config_dir / "logs.conf").write_text("loggers:\n  - {name: x, level: chatty}\n")
    done = run_sidecar(config_dir, "--log-format", "json")
    assert done.returncode == 2 and done.stdout == ""
    errors = [json.loads(line) for line in done.stderr.splitlines()]
    assert errors and {r["event"] for r in errors} == {"config.error"}
    assert {r["level"] for r in errors} == {"error"}
    messages = " | ".join(r["message"] for r in errors)
    assert "logs.conf: loggers[0]" in messages and "'chatty'" in messages

"""``sidecar log ...`` against a real sidecar, JSON log lines, and levels at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests._wait import wait_until
from tests.servers._util import free_port
from tests.sidecar_proc import SidecarProcess, run_sidecar


def sidecar_cmd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("SIDECAR_ADMIN_TOKEN", None)
    full_env.pop("SIDECAR_ADMIN_TOKEN_FILE", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "sidecar", *args], capture_output=True,
                          text=True, timeout=20, check=False, env=full_env)


def levels(proc: SidecarProcess) -> dict[str, dict[str, Any]]:
    status, rows = proc.get("/log/list")
    assert status == 200
    return {row["logger"]: row for row in rows}


def test_log_list_set_and_reset_commands(config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    proc = SidecarProcess(config_dir)
    sidecars.append(proc)
    proc.start()

    shown = sidecar_cmd("log", "list", "--url", proc.url)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["LOGGER", "LEVEL", "EXPIRES"]
    assert any(line.split() == ["sidecar.agent", "info"] for line in lines)

    done = sidecar_cmd("log", "set", "sidecar.agent", "debug", "--ttl", "15m", "--url", proc.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("sidecar.agent: debug (reverts in 1")
    row = levels(proc)["sidecar.agent"]
    assert row["level"] == "debug"
    assert 14 * 60 < row["expires"] - time.time() <= 15 * 60

    as_json = sidecar_cmd("log", "list", "--json", "--url", proc.url)
    assert {"logger": "sidecar.agent", "level": "debug", "expires": row["expires"]} in \
        json.loads(as_json.stdout)

    done = sidecar_cmd("log", "reset", "sidecar.agent", "--url", proc.url)
    assert done.returncode == 0, done.stderr
    assert levels(proc)["sidecar.agent"] == {"logger": "sidecar.agent", "level": "info"}

    # HTTP_PORT, as the sidecar itself reads it, picks the local sidecar without --url.
    done = sidecar_cmd("log", "set", "sidecar.rest", "error", env={"HTTP_PORT": str(proc.port)})
    assert done.returncode == 0, done.stderr
    assert levels(proc)["sidecar.rest"]["level"] == "error"


def test_a_reader_that_goes_away_ends_the_command_quietly(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    # `sidecar log list | head -1`: head may exit before the listing is written. The read
    # end is closed here before the command has its answer, so that it always is.
    (config_dir / "supervisor.conf").write_text(
        "programs: [{name: idle, executable-path: /bin/sleep, executable-args: ['60']}]\n")
    proc = SidecarProcess(config_dir)
    sidecars.append(proc)
    proc.start()
    for args in (("log", "list"), ("log", "list", "--json"), ("status",), ("programs",)):
        read, write = os.pipe()
        os.close(read)
        try:
            done = subprocess.run([sys.executable, "-m", "sidecar", *args, "--url", proc.url],
                                  stdout=write, stderr=subprocess.PIPE, text=True, timeout=20,
                                  check=False)
        finally:
            os.close(write)
        assert done.stderr == "", (args, done.stderr)
        assert done.returncode == 141, args  # 128 + SIGPIPE, as a shell reports `yes | head`


def test_log_commands_report_errors_with_exit_codes(config_dir: Path,
                                                    sidecars: list[SidecarProcess]) -> None:
    proc = SidecarProcess(config_dir)
    sidecars.append(proc)
    proc.start()
    bad_level = sidecar_cmd("log", "set", "sidecar.agent", "loud", "--url", proc.url)
    assert bad_level.returncode == 1
    assert "unknown log level 'loud'; valid levels are: trace, debug" in bad_level.stderr
    unknown = sidecar_cmd("log", "set", "no.such", "debug", "--url", proc.url)
    assert unknown.returncode == 1
    assert "404 unknown logger 'no.such'" in unknown.stderr
    bad_ttl = sidecar_cmd("log", "set", "sidecar.agent", "debug", "--ttl", "soon",
                          "--url", proc.url)
    assert bad_ttl.returncode == 1
    assert "ttl: expected a duration" in bad_ttl.stderr
    unreachable = sidecar_cmd("log", "list", "--url", f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 2
    assert "cannot reach" in unreachable.stderr


def test_log_set_sends_the_admin_token(config_dir: Path, tmp_path: Path,
                                       sidecars: list[SidecarProcess]) -> None:
    # An empty allow-list: every caller, loopback included, needs the token.
    (config_dir / "http.conf").write_text("admin-allow: []\nadmin-token: t0k3n\n")
    proc = SidecarProcess(config_dir)
    sidecars.append(proc)
    proc.start()
    refused = sidecar_cmd("log", "set", "sidecar.agent", "debug", "--url", proc.url)
    assert refused.returncode == 1
    assert "401" in refused.stderr
    wrong = sidecar_cmd("log", "set", "sidecar.agent", "debug", "--url", proc.url,
                        "--token", "nope")
    assert wrong.returncode == 1 and "403" in wrong.stderr
    from_env = sidecar_cmd("log", "set", "sidecar.agent", "debug", "--url", proc.url,
                           env={"SIDECAR_ADMIN_TOKEN": "t0k3n"})
    assert from_env.returncode == 0, from_env.stderr
    token_file = tmp_path / "token"
    token_file.write_text("t0k3n\n")
    from_file = sidecar_cmd("log", "reset", "sidecar.agent", "--url", proc.url,
                            "--token-file", str(token_file))
    assert from_file.returncode == 0, from_file.stderr
    assert levels(proc)["sidecar.agent"]["level"] == "info"
    # What the chart sets in the sidecar container when the token is required, so
    # that `kubectl exec ... sidecar log set` works there.
    from_env_file = sidecar_cmd("log", "set", "sidecar.agent", "warn", "--url", proc.url,
                                env={"SIDECAR_ADMIN_TOKEN_FILE": str(token_file)})
    assert from_env_file.returncode == 0, from_env_file.stderr
    assert levels(proc)["sidecar.agent"]["level"] == "warning"
    missing = sidecar_cmd("log", "list", "--url", proc.url,
                          env={"SIDECAR_ADMIN_TOKEN_FILE": str(tmp_path / "nope")})
    assert missing.returncode == 1
    assert f"$SIDECAR_ADMIN_TOKEN_FILE {tmp_path / 'nope'}: No such file" in missing.stderr


def test_levels_at_start_from_logs_conf_initial_loglvl_and_flag(
    config_dir: Path, sidecars: list[SidecarProcess],
) -> None:
    (config_dir / "logs.conf").write_text(
        "default-level: error\nloggers:\n  - {name: sidecar.statuscheck, level: debug}\n")
    plain = SidecarProcess(config_dir, env={"INITIAL_LOGLVL": ""})  # empty counts as unset
    sidecars.append(plain)
    plain.start()
    shown = levels(plain)
    assert shown["root"]["level"] == "error"
    assert shown["sidecar.statuscheck"]["level"] == "debug"
    plain.stop()
    # From the start, the configured logger writes its info lines and the others do not.
    assert "INFO    sidecar.statuscheck: agent state INIT -> OK" in plain.output()
    assert "agent started" not in plain.output()

    from_env = SidecarProcess(config_dir, env={"INITIAL_LOGLVL": "warn"})
    sidecars.append(from_env)
    from_env.start()
    assert levels(from_env)["root"]["level"] == "warning"
    assert levels(from_env)["sidecar.statuscheck"]["level"] == "debug"
    from_env.stop()

    from_flag = SidecarProcess(config_dir, "--log-level", "trace",
                               env={"INITIAL_LOGLVL": "warn"})
    sidecars.append(from_flag)
    from_flag.start()
    assert levels(from_flag)["root"]["level"] == "trace"


def test_bad_initial_loglvl_stops_start_up_naming_the_valid_levels(config_dir: Path) -> None:
    done = run_sidecar(config_dir, env={"INITIAL_LOGLVL": "loud"})
    assert done.returncode == 2
    assert "INITIAL_LOGLVL: unknown log level 'loud'; valid levels are: trace" in done.stderr
    (config_dir / "logs.conf").write_text("loggers:\n  - {name: x, level: chatty}\n")
    done = run_sidecar(config_dir)
    assert done.returncode == 2
    assert "logs.conf: loggers[0]" in done.stderr and "'chatty'" in done.stderr


def test_json_log_lines_for_collectors(config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    proc = SidecarProcess(config_dir, "--log-format", "json",
                          env={"MICROSERVICE_LABEL": "json-demo"})
    sidecars.append(proc)
    proc.start()
    status, _ = proc.get("/log/list")
    assert status == 200
    wait_until(lambda: "agent started" in proc.output(), 10, "start-up logged")
    proc.stop()
    records = [json.loads(line) for line in proc.output().splitlines() if line.strip()]
    assert records, "no log lines"
    for record in records:
        assert {"time", "level", "logger", "message"} <= set(record)
        assert record["time"].endswith("Z") and "T" in record["time"]
        assert record["level"] in {"trace", "debug", "info", "warning", "error", "fatal"}
    by_message = {r["message"]: r for r in records}
    listening = next(r for m, r in by_message.items() if m.startswith("REST API listening"))
    assert listening["logger"] == "sidecar.rest"
    assert listening["plugin"] == "rest"
    # Lines logged once the label is known carry it (the label itself is in the config).
    assert listening["service_label"] == "json-demo"
    started = next(r for m, r in by_message.items() if m.startswith("agent started"))
    assert started["level"] == "info" and "plugin" not in started

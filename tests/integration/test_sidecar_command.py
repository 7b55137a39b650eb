"""The ``sidecar`` command as a pod runs it: start, probes, status, stop, and bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.builder import example_config_dir
from tests.servers._util import free_port
from tests.sidecar_proc import SidecarProcess, run_sidecar

EXAMPLES = example_config_dir()


def test_example_config_serves_ready_probes_and_stops_on_sigterm(
    sidecars: list[SidecarProcess],
) -> None:
    proc = SidecarProcess(EXAMPLES)
    sidecars.append(proc)
    proc.start()
    status, body = proc.get("/readiness")
    assert status == 200
    assert body["state"] == 1
    assert {"build_version", "build_date", "commit_hash", "start_time", "last_change",
            "last_update", "plugins"} <= set(body)
    assert proc.get("/liveness")[0] == 200

    shown = subprocess.run([sys.executable, "-m", "sidecar", "status", "--url", proc.url],
                           capture_output=True, text=True, timeout=10, check=False)
    assert shown.returncode == 0
    assert shown.stdout.startswith("agent    OK")
    assert "\nreadiness OK  (counts " in shown.stdout

    assert proc.stop(timeout=10) == 0


def test_status_command_reports_unreachable_agent() -> None:
    port = free_port()
    shown = subprocess.run(
        [sys.executable, "-m", "sidecar", "status", "--url", f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=10, check=False)
    assert shown.returncode == 2
    assert "cannot reach" in shown.stderr


def test_version_command() -> None:
    shown = subprocess.run([sys.executable, "-m", "sidecar", "version"],
                           capture_output=True, text=True, timeout=10, check=False)
    assert shown.returncode == 0
    assert shown.stdout.startswith("sidecar 0.1.0 (built ")


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "failed" in line.lower()]
    assert len(errors) == 1, done.stderr
    return errors[0]


@pytest.mark.parametrize(("files", "args", "env", "expected"), [
    ({"http.conf": "endpoint: [1\n"}, [], {},
     "http.conf: invalid YAML: line 1, column 11: a list opened with '[' here is not closed"),
    ({"http.conf": "endpiont: 0.0.0.0:1\n"}, [], {},
     "http.conf: endpiont: unknown key (did you mean 'endpoint'?)"),
    ({"statuscheck.conf": "probe-interval: often\n"}, [], {},
     "statuscheck.conf: probe-interval: expected a duration"),
    ({"http.conf": "max-body-size: big\n"}, [], {}, "max-body-size: expected an integer"),
    ({}, ["--http-port", "http"], {}, "--http-port: invalid port 'http'"),
    ({}, [], {"HTTP_PORT": "70000"}, "HTTP_PORT: invalid port '70000'"),
    ({"http.conf": "endpoint: 0.0.0.0:99999\n"}, [], {}, "endpoint: port out of range"),
    ({}, [], {"MICROSERVICE_LABEL": "a/b"}, "must not contain '/'"),
    ({}, ["--microservice-label", ""], {}, "from --microservice-label is empty"),
    ({}, [], {"MICROSERVICE_LABEL": "x" * 300}, "the limit is 253"),
    ({"etcd.conf": "endpoints: []\n"}, [], {}, "at least one etcd endpoint"),
    ({}, ["--start-timeout", "forever"], {}, "--start-timeout: expected a duration"),
    ({"statuscheck.conf": "readiness:\n  include: [etdc]\n"}, [], {},
     "statuscheck.conf: readiness.include[0]: no plugin 'etdc' (did you mean 'etcd'?)"),
    ({"statuscheck.conf": "groups:\n  startup: {}\n"}, [], {},
     "statuscheck.conf: groups.startup.include: name the plugins this group counts"),
], ids=["yaml", "unknown-key", "duration", "type", "port-flag", "port-env", "port-file",
        "label-slash", "label-empty", "label-long", "etcd-endpoints", "timeout-flag",
        "group-plugin", "group-empty"])
def test_bad_input_exits_non_zero_with_one_clear_line(
    tmp_path: Path, files: dict[str, str], args: list[str], env: dict[str, str], expected: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    env = {"MICROSERVICE_LABEL": "test", **env}
    if "--http-port" not in args and "HTTP_PORT" not in env:
        args = [*args, "--http-port", str(free_port())]
    done = run_sidecar(tmp_path, *args, env=env)
    assert done.returncode == 2, done.stderr
    line = one_line_error(done)
    assert expected in line
    assert line.startswith("sidecar: config error: ")


def test_missing_config_dir_and_named_file(tmp_path: Path) -> None:
    done = run_sidecar(tmp_path / "nowhere")
    assert done.returncode == 2
    assert "nowhere: no such directory" in one_line_error(done)
    done = run_sidecar(tmp_path, "--etcd-config", str(tmp_path / "etcd.yaml"))
    assert done.returncode == 2
    assert "etcd.yaml: no such file" in one_line_error(done)


def test_port_in_use_fails_start_naming_the_plugin(
    tmp_path: Path, sidecars: list[SidecarProcess]
) -> None:
    first = SidecarProcess(EXAMPLES)
    sidecars.append(first)
    first.start()
    done = run_sidecar(tmp_path, "--http-port", str(first.port),
                       env={"MICROSERVICE_LABEL": "second"})
    assert done.returncode == 1
    line = one_line_error(done)
    assert "plugin 'rest' failed in after_init" in line
    assert "address already in use" in line.lower()


def test_sigterm_during_startup_exits_cleanly(tmp_path: Path) -> None:
    (tmp_path / "etcd.conf").write_text(  # etcd that never answers keeps nothing from starting
        f"endpoints: ['127.0.0.1:{free_port()}']\n")
    proc = SidecarProcess(tmp_path, env={"MICROSERVICE_LABEL": "early"})
    proc.start(wait=False)
    try:
        proc.signal(signal.SIGTERM)
        assert proc.stop(timeout=10) in (0, -signal.SIGTERM)
    finally:
        proc.kill()


def test_python_dash_m_and_console_script_agree() -> None:
    script = Path(sys.executable).parent / "sidecar"
    assert script.exists()
    shown = subprocess.run([str(script), "version"], capture_output=True, text=True,
                           timeout=10, check=False, env={**os.environ})
    assert shown.stdout.startswith("sidecar 0.1.0")


HANGING_CLOSE = """
import asyncio, sys
from sidecar import Agent, Plugin

class Stubborn(Plugin):
    name = "stubborn"
    async def close(self):
        print("closing", flush=True)
        await asyncio.Event().wait()

agent = Agent(Stubborn(), stop_timeout=60)
agent.on_started(lambda: print("started", flush=True))
sys.exit(agent.run())
"""


def test_second_signal_forces_exit(tmp_path: Path) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(HANGING_CLOSE)
    with subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as proc:
        _force_stop(proc)


def _force_stop(proc: subprocess.Popen[str]) -> None:
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "started"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline().strip() == "closing"
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(0.3)  # the graceful stop is waiting on the stubborn close
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()

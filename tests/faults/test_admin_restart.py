"""An admin restart that outlasts its HTTP request must still end with the program running.

It used to answer 503 after request-timeout (2 s here), kill the program (whose
stop-timeout is 5 s) and never start it again, while ``/supervisor/programs``
said ``exited``, ``healthy: true``, readiness stayed 200 and ``restarts: -1``
was not applied. Now the restart is the supervisor's: the request answers 202
with where to watch it, and the program runs again, healthy, its restart policy
in force; so also when the client hangs up at once. The probes are polled as
the kubelet does throughout.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests._wait import wait_until
from tests.probes import ProbePoller
from tests.sidecar_proc import SidecarProcess, request

#: Ignores SIGTERM, so that a stop takes the whole stop-timeout and then SIGKILL.
STUBBORN = ("import pathlib, signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "pathlib.Path(sys.argv[1]).touch()\n"
            "while True: time.sleep(0.1)\n")


def start(config_dir: Path, sidecars: list[SidecarProcess], tmp_path: Path) -> SidecarProcess:
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    (config_dir / "http.conf").write_text("endpoint: 127.0.0.1:0\nrequest-timeout: 2s\n")
    (config_dir / "supervisor.conf").write_text(f"""
programs:
  - name: stubborn
    executable-path: {sys.executable}
    executable-args: ["{script}", "{tmp_path}/ready"]
    stop-timeout: 5s
    restarts: -1
""")
    sidecar = SidecarProcess(config_dir, probe_listener=True)
    sidecars.append(sidecar)
    sidecar.start()
    wait_until((tmp_path / "ready").exists, 15, "the program's signal handler set")
    return sidecar


def row(sidecar: SidecarProcess) -> dict[str, Any]:
    status, body = sidecar.get("/supervisor/programs/stubborn")
    assert status == 200, body
    return dict(body)


def restarted(sidecar: SidecarProcess, old_pid: int) -> dict[str, Any]:
    """The row once the restart has finished, with the program running anew."""
    def done() -> dict[str, Any] | None:
        current = row(sidecar)
        if current["pending"] is None and current["running"] and current["pid"] != old_pid:
            return current
        return None

    return wait_until(done, 20, "the program running again after the restart")


def test_a_restart_past_request_timeout_ends_with_the_program_running(
        config_dir: Path, sidecars: list[SidecarProcess], tmp_path: Path) -> None:
    sidecar = start(config_dir, sidecars, tmp_path)
    first = row(sidecar)["pid"]
    with ProbePoller(sidecar.probe_url) as probes:
        begin = time.monotonic()
        status, body = request("POST", sidecar.url + "/supervisor/programs/stubborn/restart",
                               timeout=10)
        took = time.monotonic() - begin
        assert status == 202, body
        assert took < 2.0  # before request-timeout would have answered 503
        assert body["watch"] == "/supervisor/programs/stubborn"
        assert body["program"]["pending"] == "restart"
        after = restarted(sidecar, first)
        # 5 s of stop-timeout, then SIGKILL, then a new start: all after the answer.
        assert time.monotonic() - begin >= 5.0
        assert after["healthy"] and after["state"] != "exited", after
        probes.wait_for(lambda a: a.status == 200, 10, "readiness 200")
        assert not _alive(first)

        # restarts: -1 still applies to the program the restart started.
        second = after["pid"]
        os.kill(second, signal.SIGKILL)
        again = wait_until(lambda: row(sidecar)["pid"] not in (None, second) and row(sidecar),
                           10, "the automatic restart")
        assert again["restarts"] == 1 and again["healthy"]
    probes.assert_always_answered()
    assert "did not stop within 5s of SIGTERM: sending SIGKILL" in sidecar.output()


def test_a_restart_goes_on_when_the_client_hangs_up(
        config_dir: Path, sidecars: list[SidecarProcess], tmp_path: Path) -> None:
    sidecar = start(config_dir, sidecars, tmp_path)
    first = row(sidecar)["pid"]
    with socket.create_connection(("127.0.0.1", sidecar.port)) as sock:
        sock.sendall(b"POST /supervisor/programs/stubborn/restart HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 0\r\n\r\n")
        wait_until(lambda: row(sidecar)["pending"] == "restart", 5, "the restart begun")
    # The client is gone; the restart is not.
    after = restarted(sidecar, first)
    assert after["healthy"]


def test_the_cli_follows_a_long_restart_to_its_end(
        config_dir: Path, sidecars: list[SidecarProcess], tmp_path: Path) -> None:
    sidecar = start(config_dir, sidecars, tmp_path)
    first = row(sidecar)["pid"]
    done = subprocess.run([sys.executable, "-m", "sidecar", "programs", "restart", "stubborn",
                           "--url", sidecar.url], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "stubborn: restart in progress" in done.stderr
    assert done.stdout.startswith("stubborn: restarted (")
    assert row(sidecar)["pid"] != first and row(sidecar)["healthy"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

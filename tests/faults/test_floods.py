"""Floods from a hostile client in the pod network: none may fail a probe or flood the log.

Each attack runs as a process of its own (tests/faults/flood.py) against a real
sidecar with its probe listener (``--probe-port``, what the chart wires the
kubelet to), while threads poll the probes the way the kubelet does (a new
connection, 1 s timeout) on the probe listener and on the REST port.

The log bound each test holds: what a client causes is logged at most once per
10 s per kind (refused admin requests, connections closed at the limit, accept
errors), so a flood of S seconds writes at most ``kinds * (1 + S / 10)`` lines,
0.1 line per second and kind in the long run, whatever the request rate.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests._wait import wait_until
from tests.probes import ProbePoller
from tests.sidecar_proc import SidecarProcess, request

#: Seconds each flood lasts.
FLOOD = 10.0


def flood(mode: str, port: int, *args: str, seconds: float = FLOOD) -> dict[str, Any]:
    """Run tests/faults/flood.py to its end; what it did, with ``wall``: the seconds it
    held the sidecar busy, start-up and the closing of its connections included (on a
    loaded machine that is longer than ``seconds``, and the log bound follows it)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tests.faults.flood", mode, "--port", str(port),
         "--seconds", str(seconds), *args],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
        cwd=Path(__file__).resolve().parents[2])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["wall"] = time.monotonic() - started
    return result


def log_bound(kinds: int, seconds: float) -> float:
    """Lines a flood of ``seconds`` may write: one per 10 s per kind, the first at once."""
    return kinds * (1 + seconds / 10)


def start(config_dir: Path, sidecars: list[SidecarProcess], http_conf: str = "",
          **kwargs: Any) -> SidecarProcess:
    (config_dir / "http.conf").write_text("endpoint: 127.0.0.1:0\n" + http_conf)
    sidecar = SidecarProcess(config_dir, probe_listener=True, **kwargs)
    sidecars.append(sidecar)
    sidecar.start()
    # The REST port answers before the last plugins have started: their lines come first.
    wait_until(lambda: "agent started" in sidecar.output(), 15, "the agent started")
    return sidecar


def new_lines(sidecar: SidecarProcess, before: int) -> list[str]:
    return sidecar.log_lines()[before:]


def test_a_metrics_flood_at_256_connections_fails_no_probe(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    sidecar = start(config_dir, sidecars)
    before = len(sidecar.log_lines())
    with ProbePoller(sidecar.probe_url) as probes, ProbePoller(sidecar.url) as rest_probes:
        result = flood("http", sidecar.port, "--path", "/metrics", "--connections", "256")
    assert result["requests"] > 1000, result  # it was a flood
    assert set(result["statuses"]) <= {"200", "503"}, result
    # Zero probe failures, on the probe listener and on the REST port alike.
    probes.assert_always_answered(minimum=20)
    assert probes.statuses("/liveness") == {200}, probes.latency_summary()
    assert probes.statuses("/readiness") == {200}
    rest_probes.assert_always_answered(minimum=20)
    lines = new_lines(sidecar, before)
    assert len(lines) <= log_bound(kinds=0, seconds=result["wall"]), lines
    # The flood was answered from the cached render: a render a second, not 1000s.
    _, text = sidecar.get("/metrics?name[]=cninfra_http_cached_renders_total")
    assert 'route="/metrics"' in text, text


def test_descriptor_exhaustion_at_a_1024_limit_fails_no_probe(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    sidecar = start(config_dir, sidecars, open_files=1024)
    before = len(sidecar.log_lines())
    with ProbePoller(sidecar.probe_url) as probes, ProbePoller(sidecar.url) as rest_probes:
        # 1,100 connections that never send a byte, opened again whenever one is closed:
        # more than the process may hold. Then the same against the probe listener.
        rest = flood("silent", sidecar.port, "--connections", "1100")
        assert sidecar.open_fds() < 1024
        probe = flood("silent", sidecar.probe_port or 0, "--connections", "1100")
    assert rest["opened"] >= 1100 and probe["opened"] >= 1100, (rest, probe)
    assert rest["closed_by_server"] > 0 and probe["closed_by_server"] > 0
    probes.assert_always_answered(minimum=20)
    assert probes.statuses("/liveness") == {200}, probes.latency_summary()
    rest_probes.assert_always_answered(minimum=20)
    lines = new_lines(sidecar, before)
    # One kind per listener ("at its limit"), once per 10 s of each flood.
    assert len(lines) <= (log_bound(kinds=1, seconds=rest["wall"])
                          + log_bound(kinds=1, seconds=probe["wall"])), lines
    assert not any("Traceback" in line or "out of system resource" in line for line in lines)
    # The REST port serves as before, and its limit is below the open-files limit.
    assert sidecar.get("/readiness")[0] == 200
    metrics = sidecar.get("/metrics?name[]=cninfra_http_connections_evicted_total")[1]
    assert 'listener="rest"' in metrics and 'listener="probe"' in metrics, metrics


@pytest.mark.parametrize(("header", "status", "reason"), [
    ([], 401, "needs-token"),
    (["--header", "Authorization: Bearer wrong"], 403, "bad-token"),
    # A byte that is not UTF-8 in the header: was a 500 and a 27-line traceback each.
    (["--header-hex", (b"Authorization: Bearer \xff\xfe").hex()], 400, "malformed"),
])
def test_refused_admin_requests_are_counted_and_logged_once_per_interval(
        config_dir: Path, sidecars: list[SidecarProcess], header: list[str], status: int,
        reason: str) -> None:
    # Loopback is not in admin-allow here, and a token is set: every request is refused.
    sidecar = start(config_dir, sidecars,
                    'admin-allow: ["192.0.2.0/24"]\nadmin-token: "s3cret-t0ken"\n')
    before = len(sidecar.log_lines())
    seconds = 5.0
    with ProbePoller(sidecar.probe_url) as probes:
        result = flood("http", sidecar.port, "--method", "PUT", "--path", "/log/sidecar/debug",
                       "--connections", "32", *header, seconds=seconds)
    assert set(result["statuses"]) == {str(status)}, result
    assert result["requests"] > 500, result
    probes.assert_always_answered(minimum=10)
    lines = new_lines(sidecar, before)
    assert 1 <= len(lines) <= log_bound(kinds=1, seconds=result["wall"]), lines
    assert f"refused PUT /log/sidecar/debug from 127.0.0.1: {reason}" in lines[0]
    assert not any("Traceback" in line for line in lines)
    # Every refusal is counted, none lost to the log's limit.
    text = sidecar.get("/metrics?name[]=cninfra_http_admin_refused_total")[1]
    sample = f'cninfra_http_admin_refused_total{{reason="{reason}"}} '
    counted = float(next(line for line in text.splitlines() if line.startswith(sample))
                    .split()[-1])
    assert counted == result["requests"]
    # The level never changed.
    levels = request("GET", sidecar.url + "/log/list")[1]
    assert {"logger": "sidecar", "level": "debug"} not in levels


def test_probes_answer_while_the_event_loop_is_busy(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    """The probe listener's thread answers from the rendered state however busy the REST
    port keeps the event loop (here every /metrics request renders: no cache)."""
    sidecar = start(config_dir, sidecars, "render-cache: 0s\n")
    begin = time.monotonic()
    with ProbePoller(sidecar.probe_url) as probes:
        flood("http", sidecar.port, "--path", "/metrics", "--connections", "256",
              seconds=5.0)
    probes.assert_always_answered(minimum=10)
    assert probes.statuses("/readiness") == {200}
    assert time.monotonic() - begin >= 5.0


def test_out_of_descriptors_accept_errors_are_logged_once_and_probes_keep_a_reserve(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    """Something else holds the descriptors (here: a max-connections above what a
    256-descriptor limit allows): accept() fails with EMFILE on the REST port, over and
    over. It is logged once per 10 s, never as a traceback; the probe listener accepts
    the kubelet's connections with its reserve of descriptors."""
    sidecar = start(config_dir, sidecars, "max-connections: 5000\n", open_files=256)
    before = len(sidecar.log_lines())
    with ProbePoller(sidecar.probe_url) as probes:
        rest = flood("silent", sidecar.port, "--connections", "600")
    assert rest["opened"] >= 256, rest
    probes.assert_always_answered(minimum=20)
    lines = new_lines(sidecar, before)
    # A kind is (what, listener): the REST port's accept errors, and the probe listener's
    # should its reserve run dry for a moment (its probes still answered, above).
    rest_accept = [line for line in lines if "REST port" in line and "accept() failed" in line]
    probe_accept = [line for line in lines
                    if "probe listener" in line and "accept() failed" in line]
    assert 1 <= len(rest_accept) <= log_bound(kinds=1, seconds=rest["wall"]), lines
    assert len(probe_accept) <= log_bound(kinds=1, seconds=rest["wall"]), lines
    assert len(lines) <= log_bound(kinds=3, seconds=rest["wall"]), lines
    assert not any("Traceback" in line or "out of system resource" in line for line in lines)
    text = sidecar.get("/metrics?name[]=cninfra_http_accept_errors_total")[1]
    errors = next(line for line in text.splitlines()
                  if line.startswith('cninfra_http_accept_errors_total{listener="rest"}'))
    assert float(errors.split()[-1]) > 0

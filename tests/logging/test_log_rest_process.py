"""The log manager and start-up trace of a real ``sidecar run``: admin access, seed examples."""

from __future__ import annotations

import http.client
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sidecar.builder import example_config_dir
from tests.logging.samples import CN_INFRA_LOGS_CONF
from tests.sidecar_proc import SidecarProcess

TOKEN = "s3cret-admin-token"


def call(proc: SidecarProcess, method: str, path: str, *, source: str = "127.0.0.1",
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One request from a client socket bound to ``source`` (all of 127/8 is local)."""
    conn = http.client.HTTPConnection("127.0.0.1", proc.port, timeout=5,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, headers=headers or {})
        reply = conn.getresponse()
        raw = reply.read()
    finally:
        conn.close()
    try:
        return reply.status, json.loads(raw)
    except ValueError:
        return reply.status, raw.decode()


@pytest.fixture
def guarded(config_dir: Path, tmp_path: Path, sidecars: list[SidecarProcess]) -> SidecarProcess:
    token_file = tmp_path / "admin-token"
    token_file.write_text(TOKEN + "\n")
    (config_dir / "http.conf").write_text(
        f"admin-allow: [127.0.0.1/32]\nadmin-token-file: {token_file}\n")
    proc = SidecarProcess(config_dir)
    sidecars.append(proc)
    return proc.start()


def level_of(proc: SidecarProcess, logger: str) -> str:
    status, rows = call(proc, "GET", "/log/list", source="127.0.0.2")
    assert status == 200
    level: str = next(r["level"] for r in rows if r["logger"] == logger)
    return level


def test_peer_outside_the_allow_list_needs_the_token(guarded: SidecarProcess) -> None:
    put = "/log/sidecar.agent/debug"
    status, body = call(guarded, "PUT", put, source="127.0.0.2")
    assert status == 401
    assert "allow-list" in body["error"]
    # A forwarded-for header naming an allowed address never counts.
    for forwarded in ("127.0.0.1", "127.0.0.1, 127.0.0.2"):
        status, _ = call(guarded, "PUT", put, source="127.0.0.2",
                         headers={"X-Forwarded-For": forwarded, "X-Real-IP": "127.0.0.1",
                                  "Forwarded": "for=127.0.0.1"})
        assert status == 401
    status, _ = call(guarded, "PUT", put, source="127.0.0.2",
                     headers={"Authorization": "Bearer wrong"})
    assert status == 403
    assert level_of(guarded, "sidecar.agent") == "info"

    status, body = call(guarded, "PUT", put, source="127.0.0.2",
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, body) == (200, {"logger": "sidecar.agent", "level": "debug"})
    assert level_of(guarded, "sidecar.agent") == "debug"

    assert call(guarded, "DELETE", "/log/sidecar.agent", source="127.0.0.2")[0] == 401
    status, body = call(guarded, "DELETE", "/log/sidecar.agent", source="127.0.0.2",
                        headers={"Authorization": f"Bearer {TOKEN}"})
    assert (status, body["level"]) == (200, "info")


def test_peer_inside_the_allow_list_needs_no_token(guarded: SidecarProcess) -> None:
    status, _ = call(guarded, "PUT", "/log/sidecar.rest/error",
                     headers={"X-Forwarded-For": "203.0.113.9"})
    assert status == 200
    assert level_of(guarded, "sidecar.rest") == "error"


def test_listing_probes_and_metrics_stay_open(guarded: SidecarProcess) -> None:
    for path in ("/log/list", "/readiness", "/liveness", "/metrics"):
        assert call(guarded, "GET", path, source="127.0.0.2")[0] == 200, path


def test_startup_trace_is_an_admin_route_listing_every_plugin_step(
    guarded: SidecarProcess,
) -> None:
    assert call(guarded, "GET", "/debug/startup-trace", source="127.0.0.2")[0] == 401
    status, trace = call(guarded, "GET", "/debug/startup-trace")
    assert status == 200
    assert trace["name"] == "startup"
    entities = [e["entity"] for e in trace["entries"]]
    plugins = ["rest", "logmanager", "servicelabel", "statuscheck", "probe", "startup-trace",
               "metrics"]
    for plugin in plugins:
        assert f"{plugin}.init" in entities
        assert f"{plugin}.after_init" in entities
    # Every init comes before every after_init, and the indexes count up.
    assert max(entities.index(f"{p}.init") for p in plugins) < min(
        entities.index(f"{p}.after_init") for p in plugins)
    assert [e["index"] for e in trace["entries"]] == list(range(len(entities)))
    assert all(e["duration"] >= 0 for e in trace["entries"])
    assert 0 < trace["overall"] < 15
    assert set(trace["average"]) == set(entities)


def test_seed_curl_examples_against_the_example_config(sidecars: list[SidecarProcess]) -> None:
    """``make run`` serves examples/config: the seed's two commands, placeholders filled."""
    proc = SidecarProcess(example_config_dir())
    sidecars.append(proc)
    proc.start()
    base = f"http://localhost:{proc.port}"

    listed = subprocess.run(["curl", "-s", "-X", "GET", f"{base}/log/list"],
                            capture_output=True, text=True, timeout=10, check=True)
    rows = json.loads(listed.stdout)
    assert {"logger": "sidecar.agent", "level": "info"} in rows

    changed = subprocess.run(["curl", "-s", "-X", "PUT", f"{base}/log/sidecar.agent/debug"],
                             capture_output=True, text=True, timeout=10, check=True)
    assert json.loads(changed.stdout) == {"logger": "sidecar.agent", "level": "debug"}
    for level in ("debug", "info", "warning", "error", "fatal", "panic"):  # the seed's list
        done = subprocess.run(
            ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT",
             f"{base}/log/sidecar.agent/{level}"],
            capture_output=True, text=True, timeout=10, check=True)
        assert done.stdout == "200", level


def test_a_cn_infra_logs_conf_starts_the_sidecar_and_warns_naming_its_hooks(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    (config_dir / "logs.conf").write_text(CN_INFRA_LOGS_CONF.replace("syslog:", "kafka:"))
    proc = SidecarProcess(config_dir)
    sidecars.append(proc)
    proc.start()
    assert level_of(proc, "vpp-agent") == "warning"
    assert level_of(proc, "examplechild") == "error"
    warned = [line for line in proc.output().splitlines() if "hooks" in line]
    assert len(warned) == 1, proc.output()
    assert "WARNING" in warned[0]
    assert "hooks are not implemented by the sidecar, ignoring fluent, kafka, logstash" \
        in warned[0]
    assert "kafka not even by cn-infra (it knows syslog, logstash, fluent)" in warned[0]

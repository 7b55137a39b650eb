"""The chart's supervisor values become a supervisor.conf that the supervisor accepts."""

from __future__ import annotations

from pathlib import Path

from sidecar.exec.supervisor import parse_supervisor_config, read_config_file
from tests.packaging.render import find, helm_template

MANIFEST = Path(__file__).resolve().parents[3] / "manifests" / "programs" / "supervisor.conf"


def test_every_supervisor_key_passes_the_chart_and_parses() -> None:
    docs = helm_template({"supervisor": {
        "programs": [{"name": "web", "executable-path": "/bin/sleep",
                      "executable-args": ["600"], "logfile-path": "/tmp/web.log",
                      "restarts": -1, "env": {"MODE": "demo"}, "working-dir": "/tmp",
                      "stop-signal": "SIGINT", "stop-timeout": "10s",
                      "backoff-base": "200ms", "backoff-cap": "1m", "backoff-factor": 3,
                      "backoff-reset-after": 30, "autostart": True, "health-check": True,
                      "fatal": False, "cpu-affinity-list": "0", "cpu-affinity-setup-delay": "1s"}],
        "hooks": [{"cmd": "/bin/true", "cmd-args": [], "name": "noop", "programs": ["web"],
                   "states": ["terminated"], "timeout": "5s", "logfile-path": "/tmp/h.log"}],
    }})
    text = find(docs, "ConfigMap", "demo-cninfra-sidecar-programs")["data"]["supervisor.conf"]
    config = parse_supervisor_config(text, "chart")
    web = config.programs[0]
    assert (web.stop_timeout, web.backoff_cap, web.backoff_reset_after) == (10.0, 60.0, 30.0)
    assert web.env == {"MODE": "demo"} and config.hooks[0].states == ("terminated",)


def test_the_manifests_programs_file_parses() -> None:
    _, config = read_config_file(MANIFEST)
    assert config.programs == () and config.hooks == ()

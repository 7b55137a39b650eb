"""The process manager inside the real ``sidecar`` command: templates, probes, metrics, signals."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests._wait import wait_until
from tests.exec.helpers import Pids, assert_sidecar_as_pid_1_reaps, running
from tests.sidecar_proc import SidecarProcess, request


def _config(config_dir: Path, templates: dict[str, dict[str, object]],
            extra: str = "") -> Path:
    template_dir = config_dir / "templates"
    template_dir.mkdir()
    for name, body in templates.items():
        (template_dir / f"{name}.json").write_text(json.dumps({"name": name, **body}))
    (config_dir / "process-manager.conf").write_text(
        f"template-path: {template_dir}\nstatus-interval: 100ms\n{extra}")
    (config_dir / "statuscheck.conf").write_text("probe-interval: 200ms\n")
    return template_dir


def _pid_of(path: Path) -> int:
    wait_until(lambda: path.exists() and path.read_text().strip(), 10, f"pid in {path}")
    return int(path.read_text())


def _sleeper(pid_file: Path, **options: object) -> dict[str, object]:
    return {"cmd": "/bin/sh", "p_options": {
        "args": ["-c", f"echo $$ > {pid_file}; exec sleep 60"], "run_on_startup": True,
        **options}}


def test_templates_start_with_the_sidecar_and_stop_with_it(
        config_dir: Path, sidecars: list[SidecarProcess], pids: Pids) -> None:
    pid_file = config_dir / "web.pid"
    _config(config_dir, {"web": _sleeper(pid_file, restart=-1)})
    (config_dir / "templates" / "broken.json").write_text("{oops")
    sidecar = SidecarProcess(config_dir)
    sidecars.append(sidecar)
    sidecar.start()
    pid = pids.add(_pid_of(pid_file))
    assert running(pid)

    wait_until(lambda: sidecar.get("/readiness")[0] == 200, 10, "readiness")
    plugins = sidecar.get("/readiness")[1]["plugins"]
    assert plugins["process-manager"]["state"] == 1
    assert plugins["process:web"]["state"] == 1
    assert "broken.json" in sidecar.output()  # the bad file is named in the log

    sleeping = 'cninfra_program_state{program="web",state="sleeping"} 1.0'
    text = wait_until(lambda: sleeping in (body := request("GET", sidecar.url + "/metrics")[1])
                      and body, 10, "the sleeping state in /metrics")
    assert 'cninfra_program_up{program="web"} 1.0' in str(text)
    assert 'cninfra_program_restarts_total{program="web"} 0.0' in str(text)

    assert sidecar.stop(timeout=15) == 0
    assert not running(pid)


def test_a_killed_sidecar_takes_its_processes_but_not_detached_ones(
        config_dir: Path, sidecars: list[SidecarProcess], pids: Pids) -> None:
    bound_file, free_file = config_dir / "bound.pid", config_dir / "free.pid"
    _config(config_dir, {"bound": _sleeper(bound_file),
                         "free": _sleeper(free_file, detach=True)})
    sidecar = SidecarProcess(config_dir)
    sidecars.append(sidecar)
    sidecar.start()
    bound, free = pids.add(_pid_of(bound_file)), pids.add(_pid_of(free_file))
    sidecar.signal(signal.SIGKILL)
    assert sidecar.proc is not None
    sidecar.proc.wait(10)
    wait_until(lambda: not running(bound), 5, what="the bound process dying with the sidecar")
    assert running(free)


def test_as_pid_1_the_sidecar_reaps_orphaned_zombies(config_dir: Path) -> None:
    # Each run leaves an orphan that the kernel hands to PID 1 (the sidecar) when it ends.
    _config(config_dir, {"orphaner": {"cmd": "/bin/sh", "p_options": {
        "args": ["-c", "sleep 0.1 & exit 0"], "restart": -1, "run_on_startup": True,
        "backoff_base": "50ms", "backoff_cap": "100ms"}}}, extra="reap-interval: 100ms\n")
    assert_sidecar_as_pid_1_reaps(config_dir, zombies=5)



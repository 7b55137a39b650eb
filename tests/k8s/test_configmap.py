"""The programs ConfigMap, watched by kopf inside the sidecar, hot-applied by the supervisor."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sidecar.builder import Options, build
from tests.k8s.cluster import PodEnv, wait_for
from tests.servers._util import free_port
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess


def supervisor_conf(*programs: str, crashing: bool = False) -> str:
    """supervisor.conf with one ``sleep`` program per name (and a crash-looping one)."""
    entries: list[dict[str, Any]] = [
        {"name": name, "executable-path": "/bin/sleep", "executable-args": ["3600"]}
        for name in programs]
    if crashing:
        entries.append({"name": "crasher", "executable-path": "/bin/sh",
                        "executable-args": ["-c", "sleep 0.3; exit 3"], "restarts": -1,
                        "backoff-base": "200ms", "backoff-cap": "300ms"})
    return json.dumps({"programs": entries})


def programs(proc: SidecarProcess) -> dict[str, dict[str, Any]]:
    status, rows = proc.get("/supervisor/programs")
    assert status == 200, rows
    return {row["name"]: row for row in rows}


def running(proc: SidecarProcess) -> dict[str, int]:
    """Names of the running programs -> their pids."""
    return {name: row["pid"] for name, row in programs(proc).items()
            if row.get("pid") and row.get("alive", True)}


def start(env: PodEnv, config_dir: Path, sidecars: list[SidecarProcess]) -> SidecarProcess:
    # The mounted copy the pod starts with (SUPERVISOR_CONFIG in the chart); the
    # ConfigMap in the API is what edits arrive through.
    (config_dir / "supervisor.conf").write_text("programs: []\n")
    env.write_k8s_conf(config_dir, configmap={"name": env.programs_configmap})
    proc = SidecarProcess(config_dir, env=env.env())
    sidecars.append(proc)
    return proc.start()


def test_editing_the_configmap_starts_and_stops_programs_and_a_bad_edit_changes_nothing(
        kube_apiserver: KubeApiServer, config_dir: Path, tmp_path: Path,
        sidecars: list[SidecarProcess]) -> None:
    env = PodEnv(kube_apiserver, tmp_path)
    cm = env.programs_configmap
    env.put_configmap(cm, {"supervisor.conf": supervisor_conf("alpha")})
    proc = start(env, config_dir, sidecars)

    # The ConfigMap as it is when the sidecar starts is applied first.
    wait_for(lambda: set(running(proc)) == {"alpha"}, 15, "alpha running")

    env.put_configmap(cm, {"supervisor.conf": supervisor_conf("beta")})
    wait_for(lambda: set(running(proc)) == {"beta"}, 10, "alpha stopped and beta started")
    beta_pid = running(proc)["beta"]
    (applied,) = wait_for(lambda: [e for e in env.events("ConfigMapApplied")
                                   if "started beta" in e["message"]], 5, "ConfigMapApplied")
    assert applied["type"] == "Normal"
    assert "stopped alpha" in applied["message"]

    def rejections(count: int) -> Callable[[], list[dict[str, Any]] | None]:
        """The ConfigMapRejected Events, once there are ``count`` of them."""
        def events() -> list[dict[str, Any]] | None:
            seen = env.events("ConfigMapRejected")
            return seen if len(seen) == count else None
        return events

    # Malformed: YAML that is not a supervisor.conf, then text that is not YAML.
    for number, bad in enumerate(("programs:\n  - name: gamma\n", "programs: [unclosed\n"), 1):
        env.put_configmap(cm, {"supervisor.conf": bad})
        rejected = wait_for(rejections(number), 10, "a Warning Event")
        event = rejected[-1]
        assert event["type"] == "Warning"
        assert event["message"].startswith(f"ConfigMap {env.namespace}/{cm} key ")
        assert "the running programs are kept" in event["message"]
        assert event["involvedObject"]["uid"] == env.uid
        assert running(proc) == {"beta": beta_pid}  # nothing changed, not even a restart
    assert "executable-path" in env.events("ConfigMapRejected")[0]["message"]

    # Back to a good text: applied again.
    env.put_configmap(cm, {"supervisor.conf": supervisor_conf("beta", "delta")})
    wait_for(lambda: set(running(proc)) == {"beta", "delta"}, 10, "delta started")
    assert running(proc)["beta"] == beta_pid

    # kopf took neither the sidecar's signals nor a finalizer or annotation on the ConfigMap.
    status, stored = kube_apiserver.request(
        "GET", f"/api/v1/namespaces/{env.namespace}/configmaps/{cm}")
    assert status == 200
    assert not stored["metadata"].get("finalizers")
    assert not [a for a in stored["metadata"].get("annotations") or {} if "kopf" in a]
    begin = time.monotonic()
    assert proc.stop(timeout=15) == 0  # one SIGTERM: a graceful stop, kopf included
    assert time.monotonic() - begin < 10
    assert "Traceback" not in proc.output()


def test_a_crashing_program_posts_events_and_flips_the_pod(
        kube_apiserver: KubeApiServer, config_dir: Path, tmp_path: Path,
        sidecars: list[SidecarProcess]) -> None:
    env = PodEnv(kube_apiserver, tmp_path)
    cm = env.programs_configmap
    env.put_configmap(cm, {"supervisor.conf": supervisor_conf("steady")})
    proc = start(env, config_dir, sidecars)
    wait_for(lambda: env.shown() == ("OK", "True"), 15, "the Pod showing OK")

    env.put_configmap(cm, {"supervisor.conf": supervisor_conf("steady", crashing=True)})
    crashed = wait_for(lambda: env.events("ProgramCrashed"), 10, "a ProgramCrashed Event")
    assert crashed[0]["type"] == "Warning"
    assert crashed[0]["message"].startswith("program crasher exited with code 3")
    wait_for(lambda: env.events("ProgramRestarted"), 10, "a ProgramRestarted Event")
    # The crash loop fails readiness (program:crasher ERROR), and the Pod shows it.
    wait_for(lambda: env.shown() == ("ERROR", "False"), 10, "the Pod showing ERROR")
    condition = env.condition()
    assert condition is not None
    assert "program:crasher: crash-looping" in condition["message"]
    wait_for(lambda: env.events("AgentError"), 5, "an AgentError Event")
    # Events are rate-limited per reason: the crash loop does not flood the API server
    # (burst 5), and it did not use up the allowance of the other reasons.
    wait_for(lambda: programs(proc)["crasher"]["restarts"] >= 8, 15, "eight restarts")
    assert len(env.events("ProgramCrashed")) <= 5
    assert len(env.events("ProgramRestarted")) <= 5

    # Fixing the ConfigMap makes the Pod Ready again.
    env.put_configmap(cm, {"supervisor.conf": supervisor_conf("steady")})
    wait_for(lambda: env.shown() == ("OK", "True"), 15, "the Pod showing OK again")


async def test_kopf_in_the_sidecars_loop_leaves_no_task_and_no_signal_handler_behind(
        kube_apiserver: KubeApiServer, config_dir: Path, tmp_path: Path) -> None:
    env = await asyncio.to_thread(PodEnv, kube_apiserver, tmp_path)
    await asyncio.to_thread(env.put_configmap, env.programs_configmap,
                            {"supervisor.conf": supervisor_conf("alpha")})
    (config_dir / "supervisor.conf").write_text("programs: []\n")
    env.write_k8s_conf(config_dir, configmap={"name": env.programs_configmap})
    sidecar = build(Options(config_dir=str(config_dir), http_port=str(free_port()),
                            env={**os.environ, **env.env()}))
    assert sidecar.supervisor is not None and sidecar.k8s is not None
    async with sidecar.agent():
        deadline = time.monotonic() + 15
        while sidecar.supervisor.get_program_names() != ["alpha"]:
            assert time.monotonic() < deadline, "the ConfigMap was not applied"
            await asyncio.sleep(0.05)
        assert sidecar.k8s.operator is not None and sidecar.k8s.operator.events >= 1
    # The autouse no_leftover_tasks fixture checks kopf's tasks; its signal handlers
    # were never installed on the loop (the agent's own are only installed by serve()).
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(signal.SIGTERM)
    assert not loop.remove_signal_handler(signal.SIGINT)

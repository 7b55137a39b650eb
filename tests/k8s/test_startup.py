"""Start-up: bad k8s config stops the sidecar with one clear line; an absent API server does not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.k8s.cluster import wait_for
from tests.servers._util import free_port
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess, run_sidecar

POD_ENV = {"POD_NAME": "app-0", "POD_NAMESPACE": "shop", "KUBERNETES_SERVICE_HOST": ""}


def test_a_missing_kubeconfig_stops_the_start_naming_the_file(config_dir: Path) -> None:
    missing = config_dir / "nowhere.kubeconfig"
    (config_dir / "k8s.conf").write_text(f"kubeconfig: {missing}\n")
    done = run_sidecar(config_dir, env=POD_ENV)
    assert done.returncode == 1, done.stderr
    assert f"plugin 'k8s' failed in init: kubeconfig {missing}: no such file" in done.stderr


def test_no_pod_name_is_a_config_error(config_dir: Path) -> None:
    (config_dir / "k8s.conf").write_text("{}\n")
    done = run_sidecar(config_dir, env={"POD_NAME": "", "KUBERNETES_SERVICE_HOST": ""})
    assert done.returncode == 2, done.stderr
    assert "the Pod's name is unknown: set POD_NAME" in done.stderr


def test_bad_k8s_conf_names_the_key(config_dir: Path) -> None:
    (config_dir / "k8s.conf").write_text("status:\n  min-interval: soon\n")
    done = run_sidecar(config_dir, env=POD_ENV)
    assert done.returncode == 2, done.stderr
    assert "k8s.conf: status.min-interval:" in done.stderr


def test_an_unreachable_api_server_never_holds_the_start_or_the_probes(
        kube_apiserver: KubeApiServer, config_dir: Path, tmp_path: Path,
        sidecars: list[SidecarProcess]) -> None:
    kubeconfig = kube_apiserver.write_kubeconfig(tmp_path / "kc")
    config = json.loads(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    kubeconfig.write_text(json.dumps(config))
    (config_dir / "k8s.conf").write_text(json.dumps(
        {"kubeconfig": str(kubeconfig), "error-grace": "1s"}))
    proc = SidecarProcess(config_dir, env=POD_ENV)
    sidecars.append(proc)
    proc.start(timeout=10)

    status, body = proc.get("/liveness")
    assert status == 200, body  # k8s only reports

    def k8s_error() -> tuple[int, dict[str, Any]] | None:
        answer = proc.get("/readiness")
        return answer if answer[1]["plugins"]["k8s"]["state"] == 2 else None

    readiness = wait_for(k8s_error, 15, "k8s ERROR after error-grace")
    assert readiness[0] == 200  # k8s only reports: the pod stays in service
    assert readiness[1]["state"] == 2
    # aiohttp's "Cannot connect to host ..." or the OS's "Connect call failed ...".
    assert "onnect" in readiness[1]["plugins"]["k8s"]["error"]
    assert proc.stop() == 0

"""The fleet view without etcd: the operator follows the sidecars' Pod annotations and serves
the etcd fleet view's /fleet JSON, ?state= filter and metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.k8s import DETAIL_ANNOTATION, STATUS_ANNOTATION
from tests._wait import wait_until
from tests.k8s.cluster import PodEnv
from tests.operator.cluster import created, merge_patch, namespace
from tests.operator.harness import OperatorProcess
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess

LABEL = {"cninfra.io/sidecar": "cninfra-sidecar"}


@pytest.fixture(scope="module")
def operator(webhook_api: KubeApiServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    process = OperatorProcess(webhook_api, tmp_path_factory.mktemp("operator")).start()
    yield process
    process.stop()


def sidecar_pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "web", **LABEL}},
            "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}}


def show(api: KubeApiServer, ns: str, pod: str, state: int, error: str | None = None) -> None:
    """Write the annotations as the sidecar's Pod status writer does (pods/status)."""
    plugins: dict[str, Any] = {"web": {"state": state, "last_change": 1764064861}}
    if error:
        plugins["web"]["error"] = error
    detail = json.dumps({"state": state, "last_change": 1764064861, "plugins": plugins},
                        separators=(",", ":"))
    name = ("INIT", "OK", "ERROR")[state]
    merge_patch(api, f"/api/v1/namespaces/{ns}/pods/{pod}/status",
                {"metadata": {"annotations": {STATUS_ANNOTATION: name, DETAIL_ANNOTATION: detail}}})


def fleet(operator: OperatorProcess, query: str = "") -> dict[str, Any]:
    status, text = operator.get("/fleet" + query)
    assert status == 200, text
    return dict(json.loads(text))


def labels_in(view: dict[str, Any], ns: str) -> dict[str, str]:
    return {a["label"]: a["state_name"] for a in view["agents"] if a["namespace"] == ns}


def test_fleet_lists_every_sidecar_pod_by_its_annotations(
        webhook_api: KubeApiServer, operator: OperatorProcess) -> None:
    ns = namespace(webhook_api, "fleet")
    for name in ("ok", "failing", "new"):
        created(webhook_api, ns, sidecar_pod(name))
    created(webhook_api, ns, {**sidecar_pod("plain"),
                              "metadata": {"name": "plain", "labels": {"app": "web"}}})
    show(webhook_api, ns, "ok", 1)
    show(webhook_api, ns, "failing", 2, "exited with 1")

    want = {f"{ns}/ok": "OK", f"{ns}/failing": "ERROR", f"{ns}/new": "INIT"}
    view = wait_until(lambda: (v := fleet(operator)) and labels_in(v, ns) == want and v,
                      15, "the three sidecar pods in /fleet")
    assert view["synced"] is True and isinstance(view["revision"], int)
    assert set(view) == {"synced", "revision", "count", "states", "agents"}
    failing = next(a for a in view["agents"] if a["label"] == f"{ns}/failing")
    assert failing["state"] == 2 and failing["reported"] is True
    assert failing["plugins"]["web"]["error"] == "exited with 1"
    new = next(a for a in view["agents"] if a["label"] == f"{ns}/new")
    assert new["state"] == 0 and new["reported"] is False

    errors = fleet(operator, "?state=ERROR")
    assert [a["label"] for a in errors["agents"] if a["namespace"] == ns] == [f"{ns}/failing"]
    both = fleet(operator, "?state=init,2")
    assert set(labels_in(both, ns)) == {f"{ns}/failing", f"{ns}/new"}
    assert both["count"] == len(both["agents"])

    status, text = operator.get("/fleet?state=bogus")
    assert status == 400 and "use one of INIT, OK, ERROR" in text
    status, text = operator.get(f"/fleet/{ns}/failing")
    assert status == 200 and json.loads(text)["state_name"] == "ERROR"
    status, text = operator.get(f"/fleet/{ns}/plain")
    assert status == 404

    # A change and a deletion follow within moments.
    show(webhook_api, ns, "failing", 1)
    webhook_api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/new")
    wait_until(lambda: labels_in(fleet(operator), ns) == {f"{ns}/ok": "OK",
                                                          f"{ns}/failing": "OK"},
               15, "the change and the deletion in /fleet")


def test_per_state_gauges(webhook_api: KubeApiServer, operator: OperatorProcess) -> None:
    ns = namespace(webhook_api, "gauges")
    before = {s: operator.metric("cninfra_fleet_agents", state=s) or 0.0
              for s in ("init", "ok", "error")}
    created(webhook_api, ns, sidecar_pod("a"))
    created(webhook_api, ns, sidecar_pod("b"))
    show(webhook_api, ns, "b", 2)
    wait_until(lambda: operator.metric("cninfra_fleet_agents", state="error")
               == before["error"] + 1 and operator.metric("cninfra_fleet_agents", state="init")
               == before["init"] + 1, 15, "the gauges counting the new pods")
    assert operator.metric("cninfra_fleet_synced") == 1.0


def test_a_real_sidecar_shows_up_as_it_reports(
        webhook_api: KubeApiServer, operator: OperatorProcess, config_dir: Path,
        tmp_path: Path, sidecars: list[SidecarProcess]) -> None:
    """The annotations written by a running sidecar (its k8s plugin, the chart's Role)."""
    env = PodEnv(webhook_api, tmp_path)
    merge_patch(webhook_api, f"/api/v1/namespaces/{env.namespace}/pods/{env.pod_name}",
                {"metadata": {"labels": LABEL}})
    label = f"{env.namespace}/{env.pod_name}"
    wait_until(lambda: labels_in(fleet(operator), env.namespace) == {label: "INIT"}, 15,
               "the pod in /fleet before its sidecar reports")

    env.write_k8s_conf(config_dir)
    proc = SidecarProcess(config_dir, env=env.env())
    sidecars.append(proc)
    proc.start()
    entry = wait_until(lambda: next((a for a in fleet(operator)["agents"]
                                     if a["label"] == label and a["state_name"] == "OK"), None),
                       20, "the sidecar's OK in /fleet")
    assert entry["reported"] is True and "k8s" in entry["plugins"]

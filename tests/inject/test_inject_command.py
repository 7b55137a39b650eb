"""``sidecar inject -f FILE|-``: a YAML stream in, the same stream with the sidecar out."""

from __future__ import annotations

import copy
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.cli import main
from sidecar.inject import api, load_spec
from tests.inject.charts import rendered_spec
from tests.packaging.kubeapply import apply
from tests.servers.kube import KubeApiServer

SPEC = load_spec()
TEMPLATE: dict[str, Any] = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}}
SELECTOR = {"matchLabels": {"app": "web"}}


def stream() -> list[dict[str, Any]]:
    """One of every kind with a pod template, and a Service that must pass untouched."""
    def meta(name: str) -> dict[str, Any]:
        return {"name": name}
    pod_spec = copy.deepcopy(TEMPLATE["spec"])
    return [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "labels": {"app": "web"}},
         "spec": {**pod_spec, "restartPolicy": "Always"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web"),
         "spec": {"selector": SELECTOR, "template": copy.deepcopy(TEMPLATE)}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("db"),
         "spec": {"selector": SELECTOR, "serviceName": "db", "template": copy.deepcopy(TEMPLATE)}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta("agent"),
         "spec": {"selector": SELECTOR, "template": copy.deepcopy(TEMPLATE)}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("once"),
         "spec": {"template": _job_template()}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("nightly"),
         "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": _job_template()}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("web"),
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    ]


def _job_template() -> dict[str, Any]:
    template = copy.deepcopy(TEMPLATE)
    template["spec"]["restartPolicy"] = "Never"
    return template


def run(args: list[str], stdin: str = "", *, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["inject", *args])
    out, err = capsys.readouterr()
    return code, out, err


def pod_specs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = []
    for doc in docs:
        kind = doc["kind"]
        if kind == "Pod":
            specs.append(doc["spec"])
        elif kind == "CronJob":
            specs.append(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        elif kind != "Service":
            specs.append(doc["spec"]["template"]["spec"])
    return specs


def test_every_pod_template_of_the_stream_gets_the_sidecar(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["-f", "-"], yaml.safe_dump_all(stream()),
                         monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == [d["kind"] for d in stream()]
    for spec in pod_specs(docs):
        assert [c["name"] for c in spec["initContainers"]] == [SPEC.container_name]
        assert [c["name"] for c in spec["containers"]] == ["app"]
    assert docs[-1] == stream()[-1]  # the Service is untouched
    assert "deployment/web injected" in err and "cronjob/nightly injected" in err


def test_image_names_the_sidecar_image_of_your_registry(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    image = "registry.example/team/cninfra-sidecar:0.1.0"
    code, out, err = run(["-f", "-", "--image", image], yaml.safe_dump_all(stream()[1:2]),
                         monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    spec = pod_specs(list(yaml.safe_load_all(out)))[0]
    assert spec["initContainers"][0]["image"] == image
    assert spec["containers"][0]["image"] == "nginx:1"  # the workload's own is untouched


def test_running_it_again_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "app.yaml"
    source.write_text(yaml.safe_dump_all(stream()))
    _, once, _ = run(["-f", str(source)], monkeypatch=monkeypatch, capsys=capsys)
    code, twice, err = run(["-f", "-"], once, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0
    assert twice == once
    assert "deployment/web has the sidecar already (unchanged)" in err


def test_opted_out_template_stays_as_it_is(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    docs = stream()[1:2]
    docs[0]["spec"]["template"]["metadata"]["annotations"] = {api.INJECT: "false"}
    code, out, err = run(["-f", "-"], yaml.safe_dump(docs[0]), monkeypatch=monkeypatch,
                         capsys=capsys)
    assert code == 0
    assert yaml.safe_load(out) == docs[0]
    assert 'skipped (cninfra.io/inject: "false")' in err


def test_a_bad_override_names_the_document_and_annotation_and_writes_nothing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    docs = stream()
    docs[3]["spec"]["template"]["metadata"]["annotations"] = {api.LOG_LEVEL: "loud"}
    code, out, err = run(["-f", "-"], yaml.safe_dump_all(docs), monkeypatch=monkeypatch,
                         capsys=capsys)
    assert code == 2
    assert out == ""
    assert ("sidecar inject: stdin: document 4 (DaemonSet/agent): annotation "
            "cninfra.io/log-level: 'loud' is not a log level") in err


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["-f", "/nonexistent/app.yaml"], "", "/nonexistent/app.yaml: No such file or directory"),
    (["-f", "-"], "kind: [unclosed", "stdin: not YAML"),
    (["-f", "-", "--kube-version", "latest"], "{}", "'latest' is not of the form 1.29"),
    (["-f", "-", "--spec", "/nonexistent/spec.yaml"], "{}", "/nonexistent/spec.yaml: No such"),
])
def test_bad_input_is_an_error_that_says_what(
        args: list[str], stdin: str, message: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(args, stdin, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and out == ""
    assert message in err


def test_a_cluster_before_1_29_gets_a_second_container(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["-f", "-", "--kube-version", "1.28"], yaml.safe_dump(stream()[1]),
                       monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0
    spec = yaml.safe_load(out)["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["app", SPEC.container_name]
    assert "initContainers" not in spec


def test_the_operators_spec_configmap_is_what_gets_injected(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """--spec takes the operator's ConfigMap as `kubectl get -o yaml` prints it."""
    _, text = rendered_spec({"image": {"repository": "registry.example/sidecar", "tag": "9"}})
    configmap = tmp_path / "injection.yaml"
    configmap.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                         "metadata": {"name": "cninfra-operator-injection"},
                                         "data": {"spec.yaml": text}}))
    code, out, err = run(["-f", "-", "--spec", str(configmap)], yaml.safe_dump(stream()[0]),
                         monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    assert yaml.safe_load(out)["spec"]["initContainers"][0]["image"] == \
        "registry.example/sidecar:9"


def test_the_command_runs_as_installed(tmp_path: Path) -> None:
    source = tmp_path / "app.yaml"
    source.write_text(yaml.safe_dump(stream()[1]))
    res = subprocess.run([sys.executable, "-m", "sidecar", "inject", "-f", str(source)],
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert yaml.safe_load(res.stdout)["spec"]["template"]["spec"]["initContainers"]


def test_the_output_passes_a_server_side_dry_run(
        kube_apiserver: KubeApiServer, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Strict field validation, defaulting and admission on the real apiserver, for every
    kind; the native sidecar survives (a server without it would drop restartPolicy)."""
    code, out, err = run(["-f", "-"], yaml.safe_dump_all(stream()), monkeypatch=monkeypatch,
                         capsys=capsys)
    assert code == 0, err
    answers = apply(kube_apiserver, list(yaml.safe_load_all(out)), namespace="inject-dry-run",
                    dry_run=True)
    for spec in pod_specs(answers):
        assert spec["initContainers"][0]["restartPolicy"] == "Always"
        assert spec["readinessGates"] == [{"conditionType": "cninfra.io/ready"}]

    _, classic, _ = run(["-f", "-", "--kube-version", "1.28"], yaml.safe_dump_all(stream()),
                        monkeypatch=monkeypatch, capsys=capsys)
    apply(kube_apiserver, list(yaml.safe_load_all(classic)), namespace="inject-dry-run",
          dry_run=True)

"""The injection webhook on a real kube-apiserver: the apiserver calls the operator (on loopback,
with its own TLS) for every Pod it creates, as it would call the chart's Service."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from sidecar.inject import api as keys
from tests.inject.charts import chart_include_pod, strip_sidecar
from tests.operator.cluster import (
    app_pod,
    containers,
    create_pod,
    created,
    namespace,
)
from tests.operator.harness import OperatorProcess, install_webhook
from tests.servers.kube import KubeApiServer

INJECT = {keys.INJECT: "true"}
SIDECAR = "cninfra-sidecar"


@pytest.fixture(scope="module")
def operator(webhook_api: KubeApiServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    process = OperatorProcess(webhook_api, tmp_path_factory.mktemp("operator"))
    install_webhook(webhook_api, process.url, process.ca.read_bytes())
    process.start()
    yield process
    process.stop()


def comparable(pod: dict[str, Any]) -> dict[str, Any]:
    """What a pod's author and the chart decide (not the apiserver's bookkeeping)."""
    meta = pod["metadata"]
    return {"labels": meta.get("labels"), "annotations": meta.get("annotations"),
            "spec": pod["spec"]}


def test_annotated_pod_gets_exactly_what_the_named_templates_render(
        webhook_api: KubeApiServer, operator: OperatorProcess) -> None:
    """The source-of-truth check through the real webhook: the user's pod, injected by the
    apiserver's call, equals the chart-include pod created as rendered (both defaulted by
    the same apiserver)."""
    rendered = chart_include_pod()
    rendered["metadata"].setdefault("annotations", {}).update(INJECT)
    spec_pod = copy.deepcopy(rendered)
    rendered["metadata"]["name"] = "rendered"
    user = strip_sidecar(spec_pod, _spec())
    user["metadata"]["name"] = "injected"
    assert containers(user) == ["app"]

    ns = namespace(webhook_api, "truth")
    injected = created(webhook_api, ns, user)
    # The rendered pod carries the sidecar already: the webhook leaves it as it is.
    expected = created(webhook_api, ns, rendered)
    assert containers(injected) == [SIDECAR, "app"]
    assert comparable(injected) == comparable(expected)


def _spec() -> Any:
    from tests.inject.charts import rendered_spec

    return rendered_spec()[0]


def test_pod_of_an_annotated_deployment_gets_the_sidecar(
        webhook_api: KubeApiServer, operator: OperatorProcess) -> None:
    """No controller manager runs beside this apiserver, so the Pod is created here as the
    ReplicaSet controller creates it: from the template, with a generated name and an owner."""
    ns = namespace(webhook_api, "deploy")
    template: dict[str, Any] = {"metadata": {"labels": {"app": "web"}, "annotations": INJECT},
                "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}}
    status, deployment = webhook_api.request(
        "POST", f"/apis/apps/v1/namespaces/{ns}/deployments",
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
         "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                  "template": template}})
    assert status == 201, deployment
    # The Deployment is stored as written: injection happens to its pods.
    assert containers(deployment["spec"]["template"]) == ["app"]

    labels = {**template["metadata"]["labels"], "pod-template-hash": "5d8c7f9b6"}
    status, replica_set = webhook_api.request(
        "POST", f"/apis/apps/v1/namespaces/{ns}/replicasets",
        {"apiVersion": "apps/v1", "kind": "ReplicaSet",
         "metadata": {"name": "web-5d8c7f9b6", "labels": labels, "ownerReferences": [
             _owner(deployment)]},
         "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                  "template": {**template, "metadata": {**template["metadata"],
                                                        "labels": labels}}}})
    assert status == 201, replica_set
    for _ in range(2):
        pod = created(webhook_api, ns, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "web-5d8c7f9b6-", "labels": labels,
                         "annotations": INJECT, "ownerReferences": [_owner(replica_set)]},
            "spec": copy.deepcopy(template["spec"])})
        assert pod["metadata"]["name"].startswith("web-5d8c7f9b6-")
        assert containers(pod) == [SIDECAR, "app"]
        assert pod["spec"]["readinessGates"] == [{"conditionType": "cninfra.io/ready"}]
        assert pod["metadata"]["labels"]["cninfra.io/sidecar"] == SIDECAR


def _owner(obj: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def test_pod_without_the_annotation_is_untouched(
        webhook_api: KubeApiServer, operator: OperatorProcess) -> None:
    ns = namespace(webhook_api, "plain")
    sent = app_pod("plain")
    pod = created(webhook_api, ns, sent)
    assert containers(pod) == ["app"]
    assert pod["metadata"]["labels"] == sent["metadata"]["labels"]
    assert "volumes" not in pod["spec"] and "readinessGates" not in pod["spec"]
    opted_out = created(webhook_api, ns, app_pod("out", {keys.INJECT: "false"}))
    assert containers(opted_out) == ["app"]


@pytest.mark.parametrize(("extra", "message"), [
    ({keys.LOG_LEVEL: "loud"},
     "annotation cninfra.io/log-level: 'loud' is not a log level"),
    ({keys.MICROSERVICE_LABEL: "a/b"}, "annotation cninfra.io/microservice-label: "),
    ({keys.CONFIG_CONFIGMAP: "Bad_Name"}, "annotation cninfra.io/config-configmap: "),
    ({"cninfra.io/log-levle": "debug"}, "did you mean cninfra.io/log-level?"),
], ids=["log-level", "label", "configmap", "misspelt"])
def test_bad_override_is_denied_naming_the_annotation(
        webhook_api: KubeApiServer, operator: OperatorProcess, extra: dict[str, str],
        message: str) -> None:
    ns = namespace(webhook_api, "bad")
    status, answer = create_pod(webhook_api, ns, app_pod("bad", {**INJECT, **extra}))
    assert status == 400, answer
    assert 'admission webhook "pod.inject.cninfra.io" denied the request' in answer["message"]
    assert message in answer["message"]
    status, _ = webhook_api.request("GET", f"/api/v1/namespaces/{ns}/pods/bad")
    assert status == 404


def test_bad_inject_value_is_denied(webhook_api: KubeApiServer,
                                    operator: OperatorProcess) -> None:
    ns = namespace(webhook_api, "yes")
    status, answer = create_pod(webhook_api, ns, app_pod("p", {keys.INJECT: "yes"}))
    assert status == 400
    assert "annotation cninfra.io/inject: 'yes' is not \"true\" or \"false\"" \
        in answer["message"]


def test_namespace_label_opts_every_pod_in_and_a_pod_annotation_out(
        webhook_api: KubeApiServer, operator: OperatorProcess) -> None:
    ns = namespace(webhook_api, "labelled", {keys.INJECT: "true"})
    assert containers(created(webhook_api, ns, app_pod("in"))) == [SIDECAR, "app"]
    out = created(webhook_api, ns, app_pod("out", {keys.INJECT: "false"}))
    assert containers(out) == ["app"]


def test_overrides_reach_the_injected_container(
        webhook_api: KubeApiServer, operator: OperatorProcess) -> None:
    ns = namespace(webhook_api, "override")
    pod = created(webhook_api, ns, app_pod("p", {
        **INJECT, keys.LOG_LEVEL: "debug", keys.MICROSERVICE_LABEL: "billing",
        keys.PROGRAMS_CONFIGMAP: "billing-programs"}))
    sidecar = pod["spec"]["initContainers"][0]
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env["INITIAL_LOGLVL"] == "debug"
    assert env["MICROSERVICE_LABEL"] == "billing"
    assert env["PROGRAMS_CONFIGMAP"] == "billing-programs"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["cninfra-programs"]["configMap"]["name"] == "billing-programs"


def test_a_dry_run_shows_the_injection_and_stores_nothing(
        webhook_api: KubeApiServer, operator: OperatorProcess) -> None:
    ns = namespace(webhook_api, "dry")
    pod = created(webhook_api, ns, app_pod("p", INJECT), dry_run=True)
    assert containers(pod) == [SIDECAR, "app"]
    status, _ = webhook_api.request("GET", f"/api/v1/namespaces/{ns}/pods/p")
    assert status == 404


def test_the_operator_counts_its_reviews(webhook_api: KubeApiServer,
                                         operator: OperatorProcess) -> None:
    before = operator.metric("cninfra_operator_admissions_total", webhook="inject-pod",
                             result="injected") or 0.0
    denied = operator.metric("cninfra_operator_admissions_total", webhook="inject-pod",
                             result="denied") or 0.0
    ns = namespace(webhook_api, "count")
    created(webhook_api, ns, app_pod("a", INJECT))
    create_pod(webhook_api, ns, app_pod("b", {**INJECT, keys.LOG_LEVEL: "x"}))
    assert operator.metric("cninfra_operator_admissions_total", webhook="inject-pod",
                           result="injected") == before + 1
    assert operator.metric("cninfra_operator_admissions_total", webhook="inject-pod",
                           result="denied") == denied + 1

"""charts/cninfra-operator: what it renders, and the operator running with exactly its
permissions on a real kube-apiserver (helm install), two replicas meeting by kopf peering."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from sidecar.config import decode, parse_yaml
from sidecar.inject import api as keys
from sidecar.inject import parse_spec
from sidecar.operator import OperatorConfig
from tests._wait import wait_until
from tests.inject.charts import operator_chart
from tests.operator.cluster import app_pod, containers, created, merge_patch
from tests.operator.harness import (
    NAMESPACE,
    RELEASE,
    OperatorProcess,
    chart_copy,
    operator_chart_docs,
)
from tests.packaging.cases import KUBE_VERSIONS
from tests.packaging.render import find, helm_template, run_helm
from tests.servers._util import free_port
from tests.servers.kube import KubeApiServer

Doc = dict[str, Any]
FULLNAME = "cninfra-operator"
BUILTIN = {"ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding", "Role",
           "RoleBinding", "Service", "Deployment", "PodDisruptionBudget",
           "MutatingWebhookConfiguration"}


def render(values: Doc | None = None, *args: str) -> list[Doc]:
    return operator_chart_docs(values) if not args else helm_template(
        values, chart=_chart(), release=RELEASE, namespace=NAMESPACE, extra_args=list(args))


def _chart() -> Path:
    return chart_copy()


def conf(docs: list[Doc]) -> OperatorConfig:
    text = find(docs, "ConfigMap", FULLNAME)["data"]["operator.conf"]
    return decode(OperatorConfig, parse_yaml(text), "the chart's operator.conf")


def test_the_chart_lints(tmp_path: Path) -> None:
    run_helm("lint", "--strict", str(operator_chart(tmp_path)))


def test_default_rendering() -> None:
    docs = render()
    assert {d["kind"] for d in docs} == BUILTIN | {"ClusterKopfPeering"}
    deployment = find(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["sidecar", "operator"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["affinity"]["podAntiAffinity"]
    assert find(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert find(docs, "ClusterKopfPeering")["metadata"]["name"] == FULLNAME

    # Its config and spec are read by the operator's own decoders.
    config = conf(docs)
    assert config.tls.mode == "self-signed"
    assert config.tls.hosts[0] == f"{FULLNAME}.{NAMESPACE}.svc"
    assert config.webhook.configuration == FULLNAME and not config.peering.standalone
    spec = parse_spec(find(docs, "ConfigMap", f"{FULLNAME}-injection")["data"]["spec.yaml"],
                      "the injection ConfigMap")
    assert spec.config_map == "cninfra-sidecar-config"
    # The sidecar chart's ConfigMaps, the sources of the copies.
    find(docs, "ConfigMap", spec.config_map)
    find(docs, "ConfigMap", spec.programs_config_map)

    webhooks = find(docs, "MutatingWebhookConfiguration")["webhooks"]
    assert [w["clientConfig"]["service"]["path"] for w in webhooks] == [
        "/inject-namespace", "/inject-pod"]
    assert {w["failurePolicy"] for w in webhooks} == {"Ignore"}
    for webhook in webhooks:  # never the operator's own pods, nor kube-system
        excluded = webhook["namespaceSelector"]["matchExpressions"][1]["values"]
        assert NAMESPACE in excluded and "kube-system" in excluded


def test_an_opt_in_servicemonitor_scrapes_the_replicas_metrics() -> None:
    assert "ServiceMonitor" not in {d["kind"] for d in render()}
    docs = render({"metrics": {"serviceMonitor": {
        "enabled": True, "namespace": "monitoring", "labels": {"release": "kps"},
        "interval": "15s"}}})
    monitor = find(docs, "ServiceMonitor")
    service = find(docs, "Service", FULLNAME)
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    # It selects the operator's Service (and only it), on the port that serves /metrics.
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "15s")


def test_the_clusterrole_holds_what_the_role_it_grants_holds() -> None:
    docs = render()
    rules = find(docs, "ClusterRole")["rules"]
    spec = parse_spec(find(docs, "ConfigMap", f"{FULLNAME}-injection")["data"]["spec.yaml"],
                      "spec")
    for rule in spec.role_rules:
        assert rule in rules
    webhook_rule = next(r for r in rules if "mutatingwebhookconfigurations" in r["resources"])
    assert webhook_rule["resourceNames"] == [FULLNAME]
    assert not any("secrets" in r["resources"] for r in rules)  # only in its namespace:
    role = find(docs, "Role")
    assert {tuple(r.get("resourceNames", ())) for r in role["rules"]} == {
        (f"{FULLNAME}-webhook-tls",), ()}


def test_cert_manager_makes_the_certificate_when_it_is_there() -> None:
    docs = render(None, "--api-versions", "cert-manager.io/v1")
    certificate = find(docs, "Certificate")
    assert certificate["spec"]["secretName"] == f"{FULLNAME}-webhook-tls"
    config = conf(docs)
    assert config.tls.mode == "files"
    assert certificate["spec"]["dnsNames"][0] == f"{FULLNAME}.{NAMESPACE}.svc"
    annotations = find(docs, "MutatingWebhookConfiguration")["metadata"]["annotations"]
    assert annotations["cert-manager.io/inject-ca-from"] == f"{NAMESPACE}/{FULLNAME}"
    assert all(r.get("resourceNames") for r in find(docs, "Role")["rules"])  # no create
    forced_off = render({"tls": {"certManager": False}}, "--api-versions", "cert-manager.io/v1")
    assert conf(forced_off).tls.mode == "self-signed"
    assert not [d for d in forced_off if d["kind"] == "Certificate"]


def test_one_replica_runs_without_peering() -> None:
    docs = render({"replicas": 1})
    assert conf(docs).peering.standalone
    assert not [d for d in docs if d["kind"] == "ClusterKopfPeering"]


@pytest.mark.parametrize(("values", "message"), [
    ({"webhook": {"failurePolicy": "Sometimes"}}, "failurePolicy"),
    ({"webhook": {"timeoutSeconds": 60}}, "timeoutSeconds"),
    ({"replicas": 0}, "replicas"),
    ({"tls": {"validity": "90 days"}}, "validity"),
    ({"webhok": {}}, "webhok"),
    ({"metrics": {"serviceMonitor": {"interval": "thirty seconds"}}}, "interval"),
    ({"metrics": {"serviceMonitor": {"enabeld": True}}}, "enabeld"),
])
def test_bad_values_are_refused_by_the_schema(values: Doc, message: str) -> None:
    from tests.packaging.render import HelmError

    with pytest.raises(HelmError, match=message):
        render(values)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_builtin_object_is_valid(version: str) -> None:
    problems = []
    for doc in render() + render(None, "--api-versions", "cert-manager.io/v1"):
        if doc["kind"] not in BUILTIN:
            continue  # CRD-defined kinds: the apiserver checks them (below)
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not problems, problems


# -- on a real apiserver -----------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(webhook_api: KubeApiServer, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[str, str]]:
    """helm install of the chart (webhook URL on loopback); (the NOTES, the chart
    ServiceAccount's token)."""
    work = tmp_path_factory.mktemp("install")
    kubeconfig = webhook_api.write_kubeconfig(work / "admin.kubeconfig")
    port = free_port()
    res = run_helm("install", RELEASE, str(operator_chart(work)), "--namespace", NAMESPACE,
                   "--create-namespace", "--kubeconfig", str(kubeconfig),
                   "--set", f"webhook.url=https://127.0.0.1:{port}", timeout=180)
    token = webhook_api.create_token(NAMESPACE, FULLNAME, create_service_account=False)
    yield res.stdout, token
    shutil.rmtree(work, ignore_errors=True)


def operator_as_chart(api: KubeApiServer, workdir: Path, token: str, port: int,
                      identity: str) -> OperatorProcess:
    process = OperatorProcess(api, workdir, token=token, identity=identity, config={
        "tls": {"mode": "self-signed", "hosts": ["127.0.0.1"],
                "secret": f"{FULLNAME}-webhook-tls"},
        "webhook": {"configuration": FULLNAME}, "peering": {"standalone": False}})
    process.webhook_port = port
    conf_path = workdir / "operator.conf"
    data = json.loads(conf_path.read_text())
    data["webhook"]["port"] = port
    conf_path.write_text(json.dumps(data))
    return process


def test_notes_show_the_one_annotation(installed: tuple[str, str]) -> None:
    notes, _ = installed
    assert 'cninfra.io/inject: "true"' in notes
    assert "kubectl label namespace <namespace> cninfra.io/inject=true" in notes
    assert "curl -s localhost:9191/fleet" in notes


def test_the_operator_does_its_work_with_the_charts_permissions_and_two_replicas_share_it(
        webhook_api: KubeApiServer, installed: tuple[str, str], tmp_path: Path) -> None:
    _, token = installed
    status, config = webhook_api.request(
        "GET", f"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{FULLNAME}")
    assert status == 200, config
    found = re.search(r":(\d+)/", config["webhooks"][0]["clientConfig"]["url"])
    assert found is not None
    port = int(found.group(1))
    first = operator_as_chart(webhook_api, tmp_path / "a", token, port, "replica-a")
    try:
        first.start()
        ns = "chart-ns"
        webhook_api.ensure_namespace(ns)
        pod = created(webhook_api, ns, app_pod("p", {keys.INJECT: "true"}))
        assert containers(pod) == ["cninfra-sidecar", "app"]
        wait_until(lambda: webhook_api.request(
            "GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/"
                   "cninfra-sidecar-injected")[0] == 200, 20, "the RoleBinding, made by the "
                                                              "chart's ServiceAccount")
        view = wait_until(lambda: json.loads(first.get("/fleet")[1]), 10, "/fleet")
        assert f"{ns}/p" in [a["label"] for a in view["agents"]]
        assert "forbidden" not in first.log_path.read_text().lower()

        # A second replica: kopf peering makes one of the two the active one.
        second_port = free_port()
        second = operator_as_chart(webhook_api, tmp_path / "b", token, second_port,
                                   "replica-b")
        second.start()
        peers = wait_until(lambda: peering(webhook_api) if len(peering(webhook_api)) == 2
                           else None, 30, "both replicas in the peering object")
        active_id = max(peers, key=lambda i: peers[i]["priority"])
        active, standby = (first, second) if active_id == "replica-a" else (second, first)
        resumed = "Resuming operations after the pause"
        # A replica starts paused (peering is mandatory) and resumes when it finds no peer
        # of a higher priority: the active one does, the standby stays paused.
        wait_until(lambda: resumed in active.log_path.read_text(), 30, "the active resuming")
        if standby is first:  # it was active alone, and gives way to a higher priority
            wait_until(lambda: "Pausing operations in favour of" in first.log_path.read_text(),
                       30, "the first replica pausing for the second")
        else:
            assert resumed not in standby.log_path.read_text()
        resumes = standby.log_path.read_text().count(resumed)

        # The webhook goes to the standby (as the Service would, while the other restarts);
        # the active one stops: the standby takes over the reconcilers at once.
        _, config = webhook_api.request(  # now with the caBundle the operator put in
            "GET", "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/"
                   f"{FULLNAME}")
        merge_patch(webhook_api, "/apis/admissionregistration.k8s.io/v1/"
                                 f"mutatingwebhookconfigurations/{FULLNAME}",
                    {"webhooks": [{**w, "clientConfig": {
                        **w["clientConfig"],
                        "url": w["clientConfig"]["url"].replace(f":{port}/",
                                                                f":{standby.webhook_port}/")}}
                                  for w in config["webhooks"]]})
        active.stop()  # SIGTERM: its peering record goes at once
        wait_until(lambda: standby.log_path.read_text().count(resumed) > resumes, 30,
                   "the standby resuming")
        other = "chart-ns-2"
        webhook_api.ensure_namespace(other)
        pod = created(webhook_api, other, app_pod("q", {keys.INJECT: "true"}))
        assert containers(pod) == ["cninfra-sidecar", "app"]
        wait_until(lambda: webhook_api.request(
            "GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{other}/rolebindings/"
                   "cninfra-sidecar-injected")[0] == 200, 20, "RBAC by the former standby")
        standby.stop()
    finally:
        first.kill()


def peering(api: KubeApiServer) -> dict[str, Any]:
    status, obj = api.request("GET", f"/apis/kopf.dev/v1/clusterkopfpeerings/{FULLNAME}")
    assert status == 200, obj
    return dict(obj.get("status") or {})

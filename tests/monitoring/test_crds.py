"""The chart's ServiceMonitor, PodMonitor and PrometheusRule against the Prometheus
Operator's own CRDs (from its Go module), applied to a real kube-apiserver: a
server-side dry run with strict field validation accepts what the chart renders and
refuses what it must never render."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from tests._wait import wait_until
from tests.monitoring.monitoring import NAMESPACE, crd_docs, monitoring
from tests.packaging.kubeapply import ApplyError, apply, apply_one
from tests.packaging.render import find
from tests.servers.kube import KubeApiServer

_ids = itertools.count()


@pytest.fixture(scope="module")
def crds(kube_apiserver: KubeApiServer) -> KubeApiServer:
    """The shared apiserver with the three CRDs applied (for real) and serving."""
    for crd in crd_docs():
        apply_one(kube_apiserver, crd, namespace="default")

    def established() -> bool:
        for crd in crd_docs():
            status, body = kube_apiserver.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                       f"{crd['metadata']['name']}")
            conditions = {c["type"]: c["status"] for c in
                          (body.get("status", {}).get("conditions") or [])} \
                if status == 200 else {}
            if conditions.get("Established") != "True":
                return False
        status, _ = kube_apiserver.request("GET", "/apis/monitoring.coreos.com/v1")
        return status == 200

    wait_until(established, 30, "the monitoring CRDs established")
    return kube_apiserver


def dry_run(api: KubeApiServer, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    namespace = f"{NAMESPACE}-{next(_ids)}"
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
    return apply(api, docs, namespace=namespace, dry_run=True)


def monitors(kind: str, **settings: Any) -> dict[str, Any]:
    return {"metrics": {kind: {"enabled": True, **settings},
                        "prometheusRule": {"enabled": True},
                        "dashboard": {"enabled": True}}}


@pytest.mark.parametrize("values", [
    monitors("podMonitor"),
    monitors("serviceMonitor"),
    # Everything a prometheus-community chart user sets, at once.
    monitors("serviceMonitor", namespace="monitoring", labels={"release": "kps"},
             annotations={"example.com/owner": "platform"}, interval="15s",
             scrapeTimeout="10s", honorLabels=True,
             relabelings=[{"sourceLabels": ["__meta_kubernetes_pod_node_name"],
                           "targetLabel": "node", "action": "replace"}],
             metricRelabelings=[{"sourceLabels": ["__name__"], "regex": "python_.*",
                                 "action": "drop"}],
             tlsConfig={"insecureSkipVerify": True}),
    monitors("podMonitor", interval="1m", tlsConfig={"serverName": "sidecar.shop.svc"}),
], ids=["podmonitor", "servicemonitor", "servicemonitor-everything", "podmonitor-tls"])
def test_the_rendered_objects_pass_a_server_side_dry_run(crds: KubeApiServer,
                                                         values: dict[str, Any]) -> None:
    docs = monitoring(values)
    kinds = sorted(d["kind"] for d in docs)
    answers = dry_run(crds, docs)
    assert sorted(a["kind"] for a in answers) == kinds
    assert "PrometheusRule" in kinds and "ConfigMap" in kinds
    rule = find(answers, "PrometheusRule")
    assert len(rule["spec"]["groups"][0]["rules"]) == 7


@pytest.mark.parametrize(("kind", "field", "value", "error"), [
    ("ServiceMonitor", "intervall", "30s", r"intervall: field not declared in schema"),
    ("ServiceMonitor", "interval", "thirty seconds", r"interval: Invalid value: \"thirty"),
    ("PrometheusRule", "for", "ten minutes", r"rules\[0\]\.for: Invalid value: \"ten"),
])
def test_the_dry_run_has_teeth(crds: KubeApiServer, kind: str, field: str, value: str,
                               error: str) -> None:
    """The CRDs' schemas are in force: a misspelt field or a bad duration is refused."""
    doc = copy.deepcopy(find(monitoring(monitors("serviceMonitor")), kind))
    if kind == "ServiceMonitor":
        doc["spec"]["endpoints"][0][field] = value
    else:
        doc["spec"]["groups"][0]["rules"][0][field] = value
    with pytest.raises(ApplyError, match=error):
        dry_run(crds, [doc])


def test_the_operator_charts_servicemonitor_passes_a_server_side_dry_run(
        crds: KubeApiServer) -> None:
    from tests.operator.harness import operator_chart_docs

    docs = operator_chart_docs({"metrics": {"serviceMonitor": {
        "enabled": True, "labels": {"release": "kps"}, "interval": "30s",
        "scrapeTimeout": "10s"}}})
    (answer,) = dry_run(crds, [copy.deepcopy(find(docs, "ServiceMonitor"))])
    assert answer["spec"]["endpoints"][0]["path"] == "/metrics"

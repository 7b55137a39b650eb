"""One source of truth: what the injector adds to a pod is what the cninfra-sidecar chart's
named templates render for the same values.

Each case renders both charts with the same cninfra-sidecar values: the operator chart's
injection spec (what the operator and ``sidecar inject`` read), and examples/chart-include
(a user's chart that includes the named templates). The user's pod before injection is
the chart-include pod without the sidecar's items; injecting it must give back exactly the
chart-include pod: container, placement, volumes, readiness gate, labels, annotations.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sidecar.inject import api, inject, load_spec
from tests.inject.charts import (
    chart_include_pod,
    normalized,
    rendered_spec,
    strip_sidecar,
)
from tests.packaging.render import CHART_DIR, REPO, find, helm_template

#: (id, cninfra-sidecar values, the Kubernetes version of the cluster)
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("default", {}, None),
    ("auto-on-1.28", {}, "1.28.0"),
    ("auto-on-1.29", {}, "1.29.0"),
    ("classic", {"nativeSidecar": False}, None),
    ("native-forced-on-1.28", {"nativeSidecar": True}, "1.28.0"),
    ("minimal", {
        "k8s": {"enabled": False}, "readinessGate": {"enabled": False},
        "supervisor": {"enabled": False},
        "sidecar": {"microserviceLabel": {"value": "", "fieldPath": ""},
                    "probes": {"startup": {"enabled": False}, "liveness": {"enabled": False},
                               "readiness": {"enabled": False}},
                    "resources": None},
    }, None),
    ("everything", {
        "image": {"repository": "registry.example/cninfra-sidecar",
                  "digest": "sha256:" + "a" * 64, "pullPolicy": "Always"},
        "sidecar": {
            "name": "infra", "httpPort": 9292, "microserviceLabel": {"value": "vpp-agent-1"},
            "logLevel": "debug", "logFormat": "text", "extraArgs": ["--start-timeout=30s"],
            "env": [{"name": "EXTRA", "value": "1"}],
            "envFrom": [{"configMapRef": {"name": "more-env"}}],
            "extraVolumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
            "probes": {"liveness": {"periodSeconds": 7, "failureThreshold": 5}},
            "securityContext": {"runAsNonRoot": True, "runAsUser": 20000},
        },
        "adminToken": {"existingSecret": "cninfra-admin", "key": "token"},
        "config": {"etcd": {"endpoints": ["etcd:2379"]}, "logs": {"default-level": "warn"}},
        "k8s": {"config": {"events": {"per-minute": 6}}},
    }, None),
]


@pytest.mark.parametrize(("values", "kube_version"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_injected_pod_is_what_the_named_templates_render(
        values: dict[str, Any], kube_version: str | None) -> None:
    # The operator is installed once; the cluster's version decides native or classic at
    # injection time, as `helm install` of the user's chart decides it for the same cluster.
    spec, _ = rendered_spec(values)
    expected = normalized(chart_include_pod(values, kube_version=kube_version))
    pod = strip_sidecar(expected, spec)
    containers = pod["spec"].get("initContainers", []) + pod["spec"]["containers"]
    assert [c["name"] for c in containers] == ["app"]  # the user's pod has no sidecar

    inject(pod, spec, native=spec.native_on(kube_version))
    assert normalized(pod) == expected


def test_the_native_and_classic_cases_differ_where_they_should() -> None:
    """The cases above have teeth: on 1.28 the sidecar is a second container."""
    spec, _ = rendered_spec()
    old = chart_include_pod(kube_version="1.28.0")["spec"]
    new = chart_include_pod(kube_version="1.29.0")["spec"]
    assert spec.container_name in [c["name"] for c in old["containers"]]
    assert "initContainers" not in old or not old["initContainers"]
    assert new["initContainers"][0]["restartPolicy"] == "Always"
    assert not spec.native_on("1.28.3") and spec.native_on("v1.29.0") and spec.native_on(None)


@pytest.mark.parametrize(("annotation", "value", "values"), [
    (api.LOG_LEVEL, "trace", {"sidecar": {"logLevel": "trace"}}),
    (api.MICROSERVICE_LABEL, "billing", {"sidecar": {"microserviceLabel": {"value": "billing"}}}),
], ids=["log-level", "microservice-label"])
def test_an_override_annotation_is_the_chart_with_that_value(
        annotation: str, value: str, values: dict[str, Any]) -> None:
    spec, _ = rendered_spec()
    expected = normalized(chart_include_pod(values))
    pod = strip_sidecar(normalized(chart_include_pod()), spec)
    pod["metadata"].setdefault("annotations", {})[annotation] = value
    expected["metadata"].setdefault("annotations", {})[annotation] = value

    inject(pod, spec, native=True)
    assert normalized(pod) == expected


@pytest.mark.parametrize("values", [{}, {"sidecar": {"logLevel": "info"}}, {
    "sidecar": {"microserviceLabel": {"value": "x"}, "env": [{"name": "A", "value": "1"}]}}],
    ids=["default", "with-log-level", "with-label-and-env"])
def test_overrides_land_where_the_chart_puts_them_whatever_else_is_set(
        values: dict[str, Any]) -> None:
    """Both overrides at once, over values that already render some of their variables."""
    spec, _ = rendered_spec(values)
    both = {**values, "sidecar": {**values.get("sidecar", {}), "logLevel": "error",
                                  "microserviceLabel": {"value": "y"}}}
    expected = normalized(chart_include_pod(both))
    pod = strip_sidecar(normalized(chart_include_pod(values)), spec)
    overrides = {api.LOG_LEVEL: "error", api.MICROSERVICE_LABEL: "y"}
    pod["metadata"].setdefault("annotations", {}).update(overrides)
    expected["metadata"].setdefault("annotations", {}).update(overrides)

    inject(pod, spec, native=True)
    assert normalized(pod) == expected


def test_configmap_overrides_swap_the_volumes_and_the_watched_configmap() -> None:
    """No chart value names the ConfigMaps (their names come from the release), so the
    expectation is written out: the volumes point elsewhere, the k8s plugin is told which
    ConfigMap to watch, and the config checksum (of the operator's config) is dropped."""
    spec, _ = rendered_spec()
    rendered = normalized(chart_include_pod())
    pod = strip_sidecar(rendered, spec)
    pod["metadata"].setdefault("annotations", {}).update(
        {api.CONFIG_CONFIGMAP: "my-config", api.PROGRAMS_CONFIGMAP: "my-programs"})
    inject(pod, spec, native=True)

    expected = copy.deepcopy(rendered)
    expected["metadata"]["annotations"] = {api.CONFIG_CONFIGMAP: "my-config",
                                           api.PROGRAMS_CONFIGMAP: "my-programs"}
    for volume in expected["spec"]["volumes"]:
        if volume["name"] == "cninfra-config":
            volume["configMap"]["name"] = "my-config"
        if volume["name"] == "cninfra-programs":
            volume["configMap"]["name"] = "my-programs"
    env = expected["spec"]["initContainers"][0]["env"]
    at = [e["name"] for e in env].index("SUPERVISOR_CONFIG") + 1
    env.insert(at, {"name": api.PROGRAMS_CONFIGMAP_ENV, "value": "my-programs"})
    assert normalized(pod) == expected


def test_packaged_default_spec_is_the_operator_charts_rendering() -> None:
    """`sidecar inject` without --spec injects the operator chart's defaults; run
    scripts/render-injection-spec.py when this fails."""
    _, text = rendered_spec(same=False)
    packaged = (REPO / "sidecar" / "inject" / "default-spec.yaml").read_text()
    body = "".join(line for line in packaged.splitlines(keepends=True)
                   if not line.startswith("#"))
    assert body.strip() == text.strip()
    assert load_spec() == rendered_spec(same=False)[0]


def test_the_operators_role_is_the_sidecar_charts_role() -> None:
    """The Role the operator keeps for injected pods has the chart's rules."""
    spec, _ = rendered_spec()
    role = find(helm_template({"fullnameOverride": "cninfra-sidecar"}, chart=CHART_DIR,
                              namespace="x"), "Role")
    assert spec.role_rules == role["rules"]

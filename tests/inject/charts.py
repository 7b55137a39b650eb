"""The two charts that must agree: the operator chart's injection spec, and a user's chart
(examples/chart-include) that includes the cninfra-sidecar chart's named templates."""

from __future__ import annotations

import copy
import functools
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sidecar.inject import InjectionSpec, parse_spec
from tests.packaging.render import CHART_DIR, REPO, find, helm_template, parent_chart

__all__ = [
    "OPERATOR_CHART",
    "chart_include_pod",
    "normalized",
    "operator_chart",
    "rendered_spec",
    "strip_sidecar",
]

OPERATOR_CHART = REPO / "charts" / "cninfra-operator"
#: Values both charts get on top of each case's: the operator chart's name for the
#: objects, and examples/chart-include's config (its checksum is a pod annotation).
SAME_VALUES: dict[str, Any] = {"fullnameOverride": "cninfra-sidecar",
                               "config": {"logs": {"default-level": "debug"}}}

Doc = dict[str, Any]


def operator_chart(directory: Path) -> Path:
    """A copy of charts/cninfra-operator with the sidecar chart in its charts/, where
    `helm dependency build` would put it."""
    chart = directory / "cninfra-operator"
    shutil.copytree(OPERATOR_CHART, chart, ignore=shutil.ignore_patterns("charts"))
    shutil.copytree(CHART_DIR, chart / "charts" / "cninfra-sidecar")
    return chart


@functools.cache
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="cninfra-inject-"))


@functools.cache
def _charts() -> tuple[Path, Path]:
    work = _workdir()
    return operator_chart(work), parent_chart(work)


def rendered_spec(sidecar_values: Mapping[str, Any] | None = None, *,
                  same: bool = True, release: str = "cninfra-operator",
                  namespace: str = "cninfra",
                  kube_version: str | None = None) -> tuple[InjectionSpec, str]:
    """The operator chart's injection spec for these cninfra-sidecar values (on top of
    SAME_VALUES, unless not ``same``): parsed, and as the text of its ConfigMap key."""
    values = {"cninfra-sidecar": {**(SAME_VALUES if same else {}), **(sidecar_values or {})}}
    docs = helm_template(values, chart=_charts()[0], release=release, namespace=namespace,
                         kube_version=kube_version,
                         extra_args=["--show-only", "templates/injection.yaml"])
    text = str(find(docs, "ConfigMap")["data"]["spec.yaml"])
    return parse_spec(text, "the operator chart's injection ConfigMap"), text


def chart_include_pod(sidecar_values: Mapping[str, Any] | None = None, *,
                      kube_version: str | None = None) -> Doc:
    """The pod template of examples/chart-include rendered with these cninfra-sidecar values,
    as a Pod."""
    values = {"cninfra-sidecar": {**SAME_VALUES, **(sidecar_values or {})}}
    docs = helm_template(values, chart=_charts()[1], release="shop", namespace="shop",
                         kube_version=kube_version)
    template = copy.deepcopy(find(docs, "Deployment")["spec"]["template"])
    return {"apiVersion": "v1", "kind": "Pod", **template}


def strip_sidecar(pod: Doc, spec: InjectionSpec) -> Doc:
    """``pod`` without what the spec names: the user's pod before injection."""
    pod = copy.deepcopy(pod)
    meta, pod_spec = pod["metadata"], pod["spec"]
    for key in ("initContainers", "containers"):
        pod_spec[key] = [c for c in pod_spec.get(key) or () if c["name"] != spec.container_name]
    names = {v["name"] for v in spec.volumes}
    pod_spec["volumes"] = [v for v in pod_spec.get("volumes") or () if v["name"] not in names]
    pod_spec["readinessGates"] = [g for g in pod_spec.get("readinessGates") or ()
                                  if g not in spec.readiness_gates]
    for key in spec.pod_labels:
        meta.get("labels", {}).pop(key, None)
    for key in spec.pod_annotations:
        (meta.get("annotations") or {}).pop(key, None)
    return dict(normalized(pod))


def normalized(value: Any) -> Any:
    """``value`` without nulls and empty lists or maps (the apiserver stores neither)."""
    if isinstance(value, dict):
        out = {k: normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value

"""manifests/ (the kustomize base) and the chart's default rendering describe the
same workload: the same objects with the same content, once Helm's and
kustomize's own bookkeeping is set aside."""

from __future__ import annotations

import copy
import difflib
import re
from typing import Any

import yaml

from tests.packaging.render import MANIFESTS_DIR, find, helm_template, kustomize_build

Doc = dict[str, Any]

#: What only Helm adds: labels naming the chart and its manager, the checksum
#: that rolls the pods on a config change (kustomize's name hash does that).
HELM_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
HELM_ANNOTATIONS = ("checksum/cninfra-config",)
#: kustomize's configMapGenerator suffix: "-" and a 10-character content hash.
HASH_SUFFIX = re.compile(r"-[a-z0-9]{10}$")


def _drop(mapping: dict[str, Any] | None, keys: tuple[str, ...]) -> None:
    for key in keys:
        (mapping or {}).pop(key, None)


def normalize(docs: list[Doc]) -> dict[str, Doc]:
    """Objects by ``Kind/name``, comparable across Helm and kustomize."""
    docs = copy.deepcopy(docs)
    # No chart name ends in a 10-character word, so only kustomize's suffix goes.
    renames = {d["metadata"]["name"]: HASH_SUFFIX.sub("", d["metadata"]["name"])
               for d in docs if d["kind"] == "ConfigMap"}
    out = {}
    for doc in docs:
        meta = doc["metadata"]
        if "helm.sh/hook" in (meta.get("annotations") or {}):
            continue  # `helm test` pods: helm's, not part of the workload
        meta.pop("namespace", None)
        _drop(meta.get("labels"), HELM_LABELS)
        for subject in doc.get("subjects", []):
            subject.pop("namespace", None)  # the release's, or the overlay's
        if doc["kind"] == "ConfigMap":
            meta["name"] = renames[meta["name"]]
            # The files as YAML documents: comments differ, content must not.
            doc["data"] = {k: yaml.safe_load(v) for k, v in (doc.get("data") or {}).items()}
        template = doc.get("spec", {}).get("template")
        if template:
            _drop(template["metadata"].get("annotations"), HELM_ANNOTATIONS)
            for volume in template["spec"].get("volumes", []):
                if "configMap" in volume:
                    ref = volume["configMap"]["name"]
                    volume["configMap"]["name"] = renames.get(ref, ref)
        out[f"{doc['kind']}/{meta['name']}"] = doc
    return out


def test_manifests_and_chart_describe_the_same_workload() -> None:
    chart = normalize(helm_template(release="demo"))
    manifests = normalize(kustomize_build(MANIFESTS_DIR))
    assert sorted(manifests) == sorted(chart)
    for key, want in chart.items():
        got = manifests[key]
        if got != want:
            diff = difflib.unified_diff(
                yaml.safe_dump(want).splitlines(), yaml.safe_dump(got).splitlines(),
                "chart", "manifests", lineterm="")
            raise AssertionError(
                f"{key} differs (after changing the chart, run "
                ".venv/bin/python scripts/render-manifests.py):\n" + "\n".join(diff))


def test_the_comparison_notices_a_difference() -> None:
    chart = normalize(helm_template(release="demo"))
    changed = normalize(helm_template({"sidecar": {"httpPort": 9292}}, release="demo"))
    assert changed["Deployment/demo-cninfra-sidecar"] != chart["Deployment/demo-cninfra-sidecar"]


def test_config_configmap_rolls_the_pods_but_the_programs_one_keeps_its_name() -> None:
    docs = kustomize_build(MANIFESTS_DIR)
    names = sorted(d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap")
    assert len(names) == 2
    config, programs = names
    assert HASH_SUFFIX.search(config) and config.startswith("demo-cninfra-sidecar-config-")
    # The k8s plugin watches the programs ConfigMap by this very name.
    assert programs == "demo-cninfra-sidecar-programs"
    volumes = find(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    refs = {v["configMap"]["name"] for v in volumes if "configMap" in v}
    assert refs == {config, programs}


def test_kustomization_lists_every_file_of_the_base() -> None:
    kustomization = yaml.safe_load((MANIFESTS_DIR / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    for generator in kustomization["configMapGenerator"]:
        listed |= set(generator["files"])
    present = {str(p.relative_to(MANIFESTS_DIR)) for p in MANIFESTS_DIR.rglob("*")
               if p.is_file() and p.name != "kustomization.yaml"}
    assert listed == present

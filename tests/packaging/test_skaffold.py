"""skaffold.yaml points at the real Dockerfile, chart and manifests, and what it
sets and forwards exists in them (there is no skaffold binary here: the
checks are on the references, and the chart is rendered with skaffold's values)."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.packaging.dockerfile import parse
from tests.packaging.render import (
    CHART_DIR,
    MANIFESTS_DIR,
    REPO,
    find,
    helm_template,
    kustomize_build,
)

SKAFFOLD = REPO / "skaffold.yaml"


def config() -> dict[str, Any]:
    doc = yaml.safe_load(SKAFFOLD.read_text())
    assert isinstance(doc, dict)
    return doc


def artifact() -> dict[str, Any]:
    artifacts = config()["build"]["artifacts"]
    assert len(artifacts) == 1
    return dict(artifacts[0])


def release() -> dict[str, Any]:
    releases = config()["deploy"]["helm"]["releases"]
    assert len(releases) == 1
    return dict(releases[0])


def sanitized(image: str) -> str:
    """skaffold's template name of an artifact: / - . : become _."""
    return re.sub(r"[/\-.:]", "_", image)


def test_schema_version_and_kind() -> None:
    doc = config()
    assert re.fullmatch(r"skaffold/v4beta\d+", doc["apiVersion"])
    assert doc["kind"] == "Config"


def test_builds_the_image_from_the_real_dockerfile() -> None:
    art = artifact()
    context = REPO / art.get("context", ".")
    dockerfile = context / art["docker"]["dockerfile"]
    assert dockerfile.resolve() == (REPO / "Dockerfile").resolve()
    # Every build argument is one the Dockerfile declares.
    declared = set()
    for stage in parse(dockerfile)[1]:
        declared |= set(stage.key_values("ARG"))
    assert set(art["docker"]["buildArgs"]) <= declared


def test_deploys_the_real_chart_with_the_built_image() -> None:
    rel = release()
    assert (REPO / rel["chartPath"]).resolve() == CHART_DIR.resolve()
    name = sanitized(artifact()["image"])
    templates = rel["setValueTemplates"]
    assert templates == {
        "image.repository": f"{{{{.IMAGE_REPO_{name}}}}}",
        "image.tag": f"{{{{.IMAGE_TAG_{name}}}}}@{{{{.IMAGE_DIGEST_{name}}}}}",
    }
    # What skaffold would pass, rendered by the chart: the image lands in the sidecar.
    digest = "sha256:" + "b" * 64
    values = {"image.repository": "localhost:5000/cninfra-sidecar",
              "image.tag": f"abc1234@{digest}", **rel.get("setValues", {})}
    docs = helm_template(release=rel["name"],
                         set_values=[f"{k}={v}" for k, v in values.items()])
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    sidecar = spec["initContainers"][0]
    assert sidecar["image"] == f"localhost:5000/cninfra-sidecar:abc1234@{digest}"


def test_port_forward_reaches_the_sidecar() -> None:
    rel = release()
    docs = helm_template(release=rel["name"])
    [forward] = config()["portForward"]
    assert forward["resourceType"] == "deployment"
    deployment = find(docs, "Deployment", forward["resourceName"])
    spec = deployment["spec"]["template"]["spec"]
    ports = [p["containerPort"] for c in spec["initContainers"] + spec["containers"]
             for p in c.get("ports", []) if p["name"] == "cninfra-http"]
    assert ports == [forward["port"]] == [9191]


def test_manifests_profile_uses_the_kustomize_base() -> None:
    [profile] = [p for p in config()["profiles"] if p["name"] == "manifests"]
    [path] = profile["manifests"]["kustomize"]["paths"]
    assert (REPO / path).resolve() == MANIFESTS_DIR.resolve()
    # skaffold replaces images named like the artifact: the base must use that name.
    docs = kustomize_build(MANIFESTS_DIR)
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    assert spec["initContainers"][0]["image"].split(":")[0] == artifact()["image"]
    # The port-forward target has the same name there.
    find(docs, "Deployment", config()["portForward"][0]["resourceName"])

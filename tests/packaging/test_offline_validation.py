"""Every rendered document, of every value set and of manifests/, against the
Kubernetes OpenAPI schemas of 1.29 to 1.37 (kubernetes-validate, strict: an
unknown field is an error, as with the apiserver's strict field validation)."""

from __future__ import annotations

import functools
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from tests.packaging.cases import CASE_IDS, CASES, KUBE_VERSIONS, Case, rendered
from tests.packaging.render import helm_template, kustomize_build


def test_the_validator_ships_every_version_we_claim() -> None:
    # validate() silently falls back to the newest schema not newer than the one
    # asked for: without this check, a missing 1.37 would be validated as 1.36.
    shipped = {kubernetes_validate.utils.major_minor(v)
               for v in kubernetes_validate.utils.all_versions()}
    assert set(KUBE_VERSIONS) <= shipped


def _check(docs: list[dict[str, Any]], version: str) -> None:
    problems = []
    for doc in docs:
        try:
            used = kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = "/".join(str(p) for p in e.path)
            problems.append(f"{doc['kind']}/{doc['metadata']['name']} at {where}: {e.message}")
        else:
            assert used == version
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_chart_renderings_are_valid(case: Case, version: str) -> None:
    _check(rendered(case), version)


@pytest.mark.parametrize("version", ["1.25", "1.26", "1.27", "1.28"])
def test_older_clusters_get_a_valid_classic_sidecar(version: str) -> None:
    """The chart claims Kubernetes >= 1.25: below 1.29, `auto` renders a classic
    second container, valid for that version's API."""
    docs = helm_template(kube_version=f"{version}.0")
    spec = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    _check(docs, version)


@functools.cache
def _manifests() -> tuple[dict[str, Any], ...]:
    return tuple(kustomize_build())


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_manifests_are_valid(version: str) -> None:
    _check(list(_manifests()), version)


def test_a_bad_document_is_caught() -> None:
    """The validator has teeth: an unknown field and a wrong type both fail."""
    docs = rendered(CASES[0])
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["initContainers"][0]["restartPolicyy"] = "Always"
    with pytest.raises(AssertionError, match="restartPolicyy"):
        _check([deployment], "1.37")
    deployment = next(d for d in rendered(CASES[0]) if d["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "one"
    with pytest.raises(AssertionError, match="replicas"):
        _check([deployment], "1.29")

"""The chart and manifests/ against a real kube-apiserver: server-side dry-run
apply (defaulting, strict field validation, admission), Pod Security
"restricted", the chart's RBAC in force, and a real `helm install`."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.packaging.cases import CASE_IDS, CASES, PLATFORM, Case, rendered
from tests.packaging.kubeapply import ApplyError, apply, apply_one, install_chart_rbac
from tests.packaging.render import (
    CHART_DIR,
    MANIFESTS_DIR,
    find,
    helm_template,
    kustomize_build,
    parent_chart,
    run_helm,
)
from tests.servers.kube import KubeApiServer

Doc = dict[str, Any]
_ids = itertools.count()


def namespace(prefix: str) -> str:
    """A namespace name of this test's own."""
    return f"{prefix}-{next(_ids)}"


def test_default_rendering_is_accepted_by_the_apiserver(kube_apiserver: KubeApiServer) -> None:
    ns = namespace("default-render")
    docs = helm_template(namespace=ns)
    answers = apply(kube_apiserver, docs, namespace=ns, dry_run=True)
    assert [a["kind"] for a in answers] == [d["kind"] for d in docs]
    # The apiserver kept the native sidecar (a server without the feature would
    # silently drop restartPolicy from the init container).
    deployment = find(answers, "Deployment")
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert init["restartPolicy"] == "Always"
    assert deployment["spec"]["template"]["spec"]["readinessGates"] == [
        {"conditionType": "cninfra.io/ready"}]
    # A dry run stores nothing.
    status, _ = kube_apiserver.request(
        "GET", f"/apis/apps/v1/namespaces/{ns}/deployments/demo-cninfra-sidecar")
    assert status == 404


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_every_value_set_is_accepted(kube_apiserver: KubeApiServer, case: Case) -> None:
    ns = namespace("case")
    docs = rendered(case)
    for doc in docs:
        doc["metadata"]["namespace"] = ns
        for subject in doc.get("subjects", []):
            subject["namespace"] = ns
    apply(kube_apiserver, docs, namespace=ns, dry_run=True)


def test_apiserver_rejects_what_the_chart_must_never_render(
        kube_apiserver: KubeApiServer) -> None:
    """The dry run has teeth: strict field validation refuses an unknown field."""
    ns = namespace("teeth")
    deployment = find(helm_template(namespace=ns), "Deployment")
    deployment["spec"]["template"]["spec"]["initContainers"][0]["restartPolicyy"] = "Always"
    with pytest.raises(ApplyError, match=r"restartPolicyy: field not declared in schema"):
        apply(kube_apiserver, [deployment], namespace=ns, dry_run=True)


def test_manifests_overlay_is_accepted(kube_apiserver: KubeApiServer, tmp_path: Path) -> None:
    """manifests/ used as users do: an overlay that sets the namespace."""
    ns = namespace("kustomize")
    shutil.copytree(MANIFESTS_DIR, tmp_path / "base")
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": ns,
        "resources": ["base"],
    }))
    docs = kustomize_build(tmp_path)
    binding = find(docs, "RoleBinding")
    assert binding["subjects"][0]["namespace"] == ns
    apply(kube_apiserver, docs, namespace=ns, dry_run=True)


def test_users_chart_with_the_named_templates_is_accepted(
        kube_apiserver: KubeApiServer, tmp_path: Path) -> None:
    ns = namespace("include")
    docs = helm_template(chart=parent_chart(tmp_path), release="shop", namespace=ns)
    apply(kube_apiserver, docs, namespace=ns, dry_run=True)


# -- Pod Security "restricted" ------------------------------------------------------


def restricted_namespace(api: KubeApiServer, name: str) -> None:
    status, out = api.request("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/enforce-version": "latest",
        }},
    })
    assert status == 201, out


def pod_from(deployment: Doc, name: str) -> Doc:
    template = deployment["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, **template["metadata"]}, "spec": template["spec"]}


def test_default_pod_passes_pod_security_restricted(kube_apiserver: KubeApiServer) -> None:
    ns = namespace("restricted")
    restricted_namespace(kube_apiserver, ns)
    deployment = find(helm_template(namespace=ns), "Deployment")
    apply_one(kube_apiserver, pod_from(deployment, "demo"), namespace=ns, dry_run=True)

    # ...and the check has teeth: a sidecar that may escalate is refused.
    bad = pod_from(deployment, "bad")
    bad["spec"]["initContainers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(ApplyError, match=r'violates PodSecurity "restricted:latest"'):
        apply_one(kube_apiserver, bad, namespace=ns, dry_run=True)


# -- the chart's RBAC in force ----------------------------------------------------------

PROGRAMS = "cninfra-test-cninfra-sidecar-programs"
#: (verb, resource, subresource, name); tests/k8s/test_rbac.py has the full story.
ALLOWED = [
    ("get", "pods", "", ""), ("patch", "pods", "status", ""),
    ("get", "configmaps", "", PROGRAMS), ("list", "configmaps", "", PROGRAMS),
    ("watch", "configmaps", "", PROGRAMS),
    ("create", "events", "", ""),
]
DENIED = [
    ("patch", "pods", "", ""), ("get", "pods", "status", ""),
    ("delete", "pods", "", ""), ("create", "pods", "", ""), ("update", "pods", "", ""),
    ("list", "pods", "", ""), ("get", "pods", "exec", ""), ("create", "pods", "exec", ""),
    ("get", "secrets", "", ""), ("list", "secrets", "", ""),
    ("get", "configmaps", "", "other"), ("list", "configmaps", "", ""),
    ("update", "configmaps", "", PROGRAMS), ("patch", "configmaps", "", PROGRAMS),
    ("delete", "configmaps", "", PROGRAMS),
    ("patch", "events", "", ""), ("delete", "events", "", ""),
    ("get", "serviceaccounts", "token", ""), ("create", "serviceaccounts", "token", ""),
]


def can(api: KubeApiServer, user: str, ns: str, verb: str, resource: str,
        subresource: str, name: str) -> bool:
    status, review = api.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource,
                                        "subresource": subresource, "name": name}},
    })
    assert status == 201, review
    return bool(review["status"].get("allowed"))


def test_chart_rbac_grants_the_k8s_plugin_exactly_its_needs(
        kube_apiserver: KubeApiServer) -> None:
    ns, other = namespace("rbac"), namespace("rbac-other")
    sa = install_chart_rbac(kube_apiserver, ns)
    kube_apiserver.ensure_namespace(other)
    user = f"system:serviceaccount:{ns}:{sa}"

    wrong = [f"{verb} {res}/{sub} {name}" for verb, res, sub, name in ALLOWED
             if not can(kube_apiserver, user, ns, verb, res, sub, name)]
    wrong += [f"{verb} {res}/{sub} {name} (should be denied)"
              for verb, res, sub, name in DENIED
              if can(kube_apiserver, user, ns, verb, res, sub, name)]
    wrong += [f"{verb} {res}/{sub} {name} in another namespace (should be denied)"
              for verb, res, sub, name in ALLOWED
              if can(kube_apiserver, user, other, verb, res, sub, name)]
    assert not wrong, wrong

    # And with the ServiceAccount's own token, as the sidecar would call.
    token = kube_apiserver.create_token(ns, sa, create_service_account=False)
    status, _ = kube_apiserver.request(
        "GET", f"/api/v1/namespaces/{ns}/configmaps/{PROGRAMS}", token=token)
    assert status == 404  # allowed, and not there yet
    status, _ = kube_apiserver.request("GET", f"/api/v1/namespaces/{ns}/configmaps", token=token)
    assert status == 403
    status, _ = kube_apiserver.request("GET", f"/api/v1/namespaces/{ns}/secrets", token=token)
    assert status == 403


# -- helm install ------------------------------------------------------------------------


def test_helm_install_prints_how_to_reach_the_sidecar(
        kube_apiserver: KubeApiServer, tmp_path: Path) -> None:
    ns = namespace("install")
    kubeconfig = kube_apiserver.write_kubeconfig(tmp_path / "admin.kubeconfig")
    res = run_helm("install", "demo", str(CHART_DIR), "--namespace", ns, "--create-namespace",
                   "--kubeconfig", str(kubeconfig), timeout=120)
    notes = res.stdout
    assert f"kubectl -n {ns} port-forward deploy/demo-cninfra-sidecar 9191:9191" in notes
    assert "curl -s localhost:9191/readiness" in notes
    assert "curl -X PUT localhost:9191/log/<logger>/<level>" in notes
    assert "curl -s localhost:9191/log/list" in notes
    assert f"kubectl -n {ns} edit configmap demo-cninfra-sidecar-programs" in notes
    assert f"helm test demo -n {ns}" in notes

    status, deployment = kube_apiserver.request(
        "GET", f"/apis/apps/v1/namespaces/{ns}/deployments/demo-cninfra-sidecar")
    assert status == 200, deployment
    status, role = kube_apiserver.request(
        "GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/demo-cninfra-sidecar")
    assert status == 200 and role["rules"] == find(helm_template(namespace=ns), "Role")["rules"]

    run_helm("uninstall", "demo", "--namespace", ns, "--kubeconfig", str(kubeconfig),
             "--wait", "--timeout", "60s", timeout=120)
    status, _ = kube_apiserver.request(
        "GET", f"/apis/apps/v1/namespaces/{ns}/deployments/demo-cninfra-sidecar")
    assert status == 404


# -- the values a platform team sets (issue 22), one at a time ------------------------------

#: (values, the kind of object that shows it, where in the apiserver's answer, expected)
NEW_VALUES: list[tuple[str, dict[str, Any], str, tuple[str | int, ...], Any]] = [
    ("global.imageRegistry", {"global": {"imageRegistry": "mirror.example"}}, "Deployment",
     ("spec", "template", "spec", "initContainers", 0, "image"),
     "mirror.example/cninfra-sidecar:0.1.0"),
    ("global.imagePullSecrets", {"global": {"imagePullSecrets": ["pull"]}}, "Deployment",
     ("spec", "template", "spec", "imagePullSecrets"), [{"name": "pull"}]),
    ("commonLabels", {"commonLabels": {"team": "infra"}}, "Role",
     ("metadata", "labels", "team"), "infra"),
    ("commonAnnotations", {"commonAnnotations": {"owner": "me"}}, "ServiceAccount",
     ("metadata", "annotations", "owner"), "me"),
    ("sidecar.lifecycle", {"sidecar": {"lifecycle": {"preStop": {"sleep": {"seconds": 1}}}}},
     "Deployment", ("spec", "template", "spec", "initContainers", 0, "lifecycle"),
     {"preStop": {"sleep": {"seconds": 1}}}),
    ("sidecar.extraVolumes", {"sidecar": {
        "extraVolumes": [{"name": "x", "emptyDir": {}}],
        "extraVolumeMounts": [{"name": "x", "mountPath": "/x"}]}},
     "Deployment", ("spec", "template", "spec", "volumes", -1, "name"), "x"),
    ("sidecar.probes.*.initialDelaySeconds", {"sidecar": {"probes": {
        "liveness": {"enabled": True, "initialDelaySeconds": 7}}}},
     "Deployment", ("spec", "template", "spec", "initContainers", 0, "livenessProbe",
                    "initialDelaySeconds"), 7),
    ("sidecar.probes.readiness.successThreshold", {"sidecar": {"probes": {
        "readiness": {"enabled": True, "successThreshold": 2}}}},
     "Deployment", ("spec", "template", "spec", "initContainers", 0, "readinessProbe",
                    "successThreshold"), 2),
    ("sidecar.probes.liveness.terminationGracePeriodSeconds", {"sidecar": {"probes": {
        "liveness": {"enabled": True, "terminationGracePeriodSeconds": 9}}}},
     "Deployment", ("spec", "template", "spec", "initContainers", 0, "livenessProbe",
                    "terminationGracePeriodSeconds"), 9),
    ("podDisruptionBudget", {"podDisruptionBudget": {
        "enabled": True, "unhealthyPodEvictionPolicy": "AlwaysAllow"},
        "workload": {"replicas": 2}},
     "PodDisruptionBudget", ("spec", "unhealthyPodEvictionPolicy"), "AlwaysAllow"),
    ("networkPolicy.enabled", {"networkPolicy": {"enabled": True}}, "NetworkPolicy",
     ("spec", "ingress", 0, "ports", 0, "port"), 9191),
    ("priorityClassName", {"priorityClassName": "high"}, "Deployment",
     ("spec", "template", "spec", "priorityClassName"), "high"),
    ("adminToken.required", {"adminToken": {"required": True}}, "Secret",
     ("metadata", "name"), "demo-cninfra-sidecar-admin-token"),
    ("metrics.service.allowExternal", {"metrics": {"service": {
        "type": "LoadBalancer", "allowExternal": True}}}, "Service",
     ("spec", "type"), "LoadBalancer"),
    ("tests.enabled", {}, "Pod", ("spec", "containers", 0, "command", 1), "status"),
]


def dig(doc: Any, path: tuple[str | int, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@pytest.mark.parametrize(("values", "kind", "path", "expected"),
                         [case[1:] for case in NEW_VALUES], ids=[c[0] for c in NEW_VALUES])
def test_each_new_value_is_accepted_and_kept_by_the_apiserver(
        kube_apiserver: KubeApiServer, values: dict[str, Any], kind: str,
        path: tuple[str | int, ...], expected: Any) -> None:
    ns = namespace("value")
    docs = helm_template(values, namespace=ns)
    answers = apply(kube_apiserver, docs, namespace=ns, dry_run=True)
    shown = [a for a in answers if a["kind"] == kind
             and (kind != "Service" or a["metadata"]["name"].endswith("-metrics"))]
    assert shown, f"no {kind} among {[a['kind'] for a in answers]}"
    assert dig(shown[0], path) == expected


def test_the_default_pod_passes_restricted_with_every_platform_value(
        kube_apiserver: KubeApiServer) -> None:
    ns = namespace("restricted-platform")
    restricted_namespace(kube_apiserver, ns)
    # A Pod's admission checks that its PriorityClass exists (a Deployment's does not).
    status, out = kube_apiserver.request(
        "POST", "/apis/scheduling.k8s.io/v1/priorityclasses",
        {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
         "metadata": {"name": PLATFORM["priorityClassName"]}, "value": 1000})
    assert status in (201, 409), out
    docs = rendered(next(c for c in CASES if c.name == "platform"))
    deployment = find(docs, "Deployment")
    apply_one(kube_apiserver, pod_from(deployment, "demo"), namespace=ns, dry_run=True)
    test_pod = find(docs, "Pod")  # the helm test pod too
    test_pod["metadata"].pop("namespace")
    apply_one(kube_apiserver, test_pod, namespace=ns, dry_run=True)


def test_install_with_the_token_required_prints_how_to_use_it_and_keeps_it(
        kube_apiserver: KubeApiServer, tmp_path: Path) -> None:
    ns = namespace("token")
    kubeconfig = str(kube_apiserver.write_kubeconfig(tmp_path / "admin.kubeconfig"))
    common = ["--namespace", ns, "--kubeconfig", kubeconfig, "--set", "adminToken.required=true"]
    res = run_helm("install", "demo", str(CHART_DIR), "--create-namespace", *common,
                   timeout=120)
    secret = "demo-cninfra-sidecar-admin-token"
    assert (f"TOKEN=$(kubectl -n {ns} get secret {secret} -o jsonpath='{{.data.token}}' "
            "| base64 -d)") in res.stdout
    assert f"kubectl -n {ns} port-forward deploy/demo-cninfra-sidecar 9191:9191" in res.stdout
    assert ('curl -H "Authorization: Bearer $TOKEN" -X PUT localhost:9191/log/<logger>/<level>'
            in res.stdout)
    path = f"/api/v1/namespaces/{ns}/secrets/{secret}"
    status, first = kube_apiserver.request("GET", path)
    assert status == 200, first

    # An upgrade keeps the token: the running sidecars read it at start-up.
    run_helm("upgrade", "demo", str(CHART_DIR), *common, "--set", "workload.replicas=2",
             timeout=120)
    status, second = kube_apiserver.request("GET", path)
    assert status == 200 and second["data"] == first["data"]
    run_helm("uninstall", "demo", "--namespace", ns, "--kubeconfig", kubeconfig, timeout=120)


def test_lint_strict_passes_for_the_platform_values(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(next(c for c in CASES if c.name == "platform").values))
    res = run_helm("lint", "--strict", str(CHART_DIR), "--values", str(values), check=False)
    assert res.returncode == 0, res.stdout + res.stderr

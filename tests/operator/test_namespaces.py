"""What injected pods need in their namespace, kept by the operator: a least-privilege Role and
a RoleBinding for their ServiceAccounts (whatever they are), and copies of the sidecar's
ConfigMaps; removed with the last such pod. On an apiserver with the ServiceAccount
admission plugin on, as in a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sidecar.inject import api as keys
from tests._wait import wait_until
from tests.inject.charts import rendered_spec
from tests.operator.cluster import app_pod, containers, created, merge_patch
from tests.operator.harness import NAMESPACE, OperatorProcess, install_webhook, operator_chart_docs
from tests.packaging.kubeapply import apply
from tests.servers.kube import KubeApiServer

INJECT = {keys.INJECT: "true"}
NAME = "cninfra-sidecar-injected"
CONFIG, PROGRAMS = "cninfra-sidecar-config", "cninfra-sidecar-programs"
RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces"


@pytest.fixture(scope="module")
def api() -> Iterator[KubeApiServer]:
    with KubeApiServer(service_account_admission=True) as server:
        yield server


@pytest.fixture(scope="module")
def operator(api: KubeApiServer,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    process = OperatorProcess(api, tmp_path_factory.mktemp("operator"))
    # The chart's ConfigMaps in the operator's namespace: the sources of the copies.
    sources = [d for d in operator_chart_docs() if d["kind"] == "ConfigMap"
               and d["metadata"]["name"] in (CONFIG, PROGRAMS)]
    assert len(sources) == 2
    apply(api, sources, namespace=NAMESPACE)
    install_webhook(api, process.url, process.ca.read_bytes())
    process.start()
    yield process
    process.stop()


def namespace(api: KubeApiServer, name: str, *accounts: str) -> str:
    """A namespace with the ServiceAccounts the controller manager (not run here) would
    make, and ``accounts``."""
    api.ensure_namespace(name)
    for account in ("default", *accounts):
        status, out = api.request("POST", f"/api/v1/namespaces/{name}/serviceaccounts", {
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}})
        assert status in (201, 409), out
    return name


def get(api: KubeApiServer, path: str) -> dict[str, Any] | None:
    status, out = api.request("GET", path)
    if status == 404:
        return None
    assert status == 200, out
    return dict(out)


def subjects(api: KubeApiServer, ns: str) -> list[str] | None:
    binding = get(api, f"{RBAC}/{ns}/rolebindings/{NAME}")
    return None if binding is None else [s["name"] for s in binding["subjects"]]


def can(api: KubeApiServer, user: str, ns: str, verb: str, resource: str,
        subresource: str = "", name: str = "") -> bool:
    status, review = api.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
                 "resourceAttributes": {"namespace": ns, "verb": verb, "resource": resource,
                                        "subresource": subresource, "name": name}}})
    assert status == 201, review
    return bool(review["status"].get("allowed"))


def pod_as(name: str, account: str, **spec: Any) -> dict[str, Any]:
    pod = app_pod(name, INJECT)
    pod["spec"] |= {"serviceAccountName": account, **spec}
    return pod


def test_rbac_and_configmaps_follow_the_injected_pods(
        api: KubeApiServer, operator: OperatorProcess) -> None:
    ns = namespace(api, "shop", "billing")
    created(api, ns, pod_as("billing-0", "billing"))
    created(api, ns, pod_as("web-0", "default"))
    created(api, ns, app_pod("plain", {}))  # no sidecar: its account gets nothing

    wait_until(lambda: subjects(api, ns) == ["billing", "default"], 15,
               "a RoleBinding for both ServiceAccounts")
    role = get(api, f"{RBAC}/{ns}/roles/{NAME}")
    assert role is not None
    assert role["rules"] == rendered_spec()[0].role_rules  # the sidecar chart's Role
    assert role["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "cninfra-operator"
    for name in (CONFIG, PROGRAMS):
        path = f"/api/v1/namespaces/{ns}/configmaps/{name}"
        copy = wait_until(lambda path=path: get(api, path), 15, f"{name} copied")  # type: ignore[misc]
        source = get(api, f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}")
        assert source is not None and copy["data"] == source["data"]
        assert copy["metadata"]["annotations"]["cninfra.io/copied-from"] == f"{NAMESPACE}/{name}"

    # The sidecar's permissions, and nothing more, for the pods' accounts only.
    for account in ("billing", "default"):
        user = f"system:serviceaccount:{ns}:{account}"
        assert can(api, user, ns, "get", "pods") and can(api, user, ns, "patch", "pods", "status")
        assert can(api, user, ns, "watch", "configmaps", name=PROGRAMS)
        assert can(api, user, ns, "create", "events")
        assert not can(api, user, ns, "get", "configmaps", name="someone-elses")
        assert not can(api, user, ns, "get", "secrets")
        assert not can(api, user, ns, "delete", "pods")
        assert not can(api, user, ns, "patch", "pods")  # the status subresource only
        assert not can(api, user, "default", "get", "pods")

    # An edit of the source reaches the copy (and so the running sidecars' supervisor).
    programs = "programs:\n- name: heartbeat\n  executable-path: /bin/sleep\n"
    merge_patch(api, f"/api/v1/namespaces/{NAMESPACE}/configmaps/{PROGRAMS}",
                {"data": {"supervisor.conf": programs}})
    wait_until(lambda: (get(api, f"/api/v1/namespaces/{ns}/configmaps/{PROGRAMS}") or {})
               .get("data", {}).get("supervisor.conf") == programs, 15, "the edit copied")

    # One account fewer, then none: the binding shrinks, then everything goes.
    api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/billing-0")
    wait_until(lambda: subjects(api, ns) == ["default"], 15, "the binding without billing")
    api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/web-0")
    wait_until(lambda: subjects(api, ns) is None and all(
        get(api, path) is None for path in (f"{RBAC}/{ns}/roles/{NAME}",
                                            f"/api/v1/namespaces/{ns}/configmaps/{CONFIG}",
                                            f"/api/v1/namespaces/{ns}/configmaps/{PROGRAMS}")),
               15, "the RoleBinding, the Role and the copies removed")


def test_a_namespaces_own_configmap_is_never_overwritten(
        api: KubeApiServer, operator: OperatorProcess) -> None:
    ns = namespace(api, "own-config")
    own = {"http.conf": "admin-allow: [127.0.0.0/8]\n"}
    status, out = api.request("POST", f"/api/v1/namespaces/{ns}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": CONFIG}, "data": own})
    assert status == 201, out
    created(api, ns, pod_as("p", "default"))
    wait_until(lambda: get(api, f"/api/v1/namespaces/{ns}/configmaps/{PROGRAMS}"), 15,
               "the programs ConfigMap copied")
    config = get(api, f"/api/v1/namespaces/{ns}/configmaps/{CONFIG}")
    assert config is not None and config["data"] == own

    api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/p")
    wait_until(lambda: get(api, f"/api/v1/namespaces/{ns}/configmaps/{PROGRAMS}") is None, 15,
               "the copy removed")
    assert get(api, f"/api/v1/namespaces/{ns}/configmaps/{CONFIG}") is not None  # still theirs


def test_the_sidecar_alone_gets_a_token_when_the_pod_has_none(
        api: KubeApiServer, operator: OperatorProcess) -> None:
    ns = namespace(api, "tokens")
    sa_path = "/var/run/secrets/kubernetes.io/serviceaccount"

    def mounts(container: dict[str, Any]) -> dict[str, str]:
        return {m["mountPath"]: m["name"] for m in container.get("volumeMounts") or ()}

    closed = created(api, ns, pod_as("closed", "default", automountServiceAccountToken=False))
    sidecar, app = closed["spec"]["initContainers"][0], closed["spec"]["containers"][0]
    assert mounts(sidecar)[sa_path] == "cninfra-api-access"
    assert sa_path not in mounts(app)
    projected = next(v for v in closed["spec"]["volumes"] if v["name"] == "cninfra-api-access")
    assert projected["projected"]["sources"][0]["serviceAccountToken"]["path"] == "token"

    # With the default (a token for every container, mounted by the admission plugin before
    # the webhook runs) the sidecar keeps its own: one mount at the path, no clash.
    open_pod = created(api, ns, pod_as("open", "default"))
    sidecar, app = open_pod["spec"]["initContainers"][0], open_pod["spec"]["containers"][0]
    assert mounts(sidecar)[sa_path] == "cninfra-api-access"
    assert mounts(app)[sa_path].startswith("kube-api-access-")
    assert containers(open_pod) == ["cninfra-sidecar", "app"]


def test_what_a_stopped_operator_left_is_cleaned_up_when_it_is_back(
        api: KubeApiServer, operator: OperatorProcess, tmp_path: Path) -> None:
    ns = namespace(api, "left")
    created(api, ns, pod_as("p", "default"))
    wait_until(lambda: subjects(api, ns) == ["default"], 15, "the RoleBinding")
    operator.stop()
    try:
        api.request("DELETE", f"/api/v1/namespaces/{ns}/pods/p")
        assert subjects(api, ns) == ["default"]  # nobody there to notice
    finally:
        operator.start()
    wait_until(lambda: subjects(api, ns) is None
               and get(api, f"{RBAC}/{ns}/roles/{NAME}") is None, 20,
               "the leftover RoleBinding and Role removed")


def test_a_pod_watching_its_own_programs_configmap_may_read_it(
        api: KubeApiServer, operator: OperatorProcess) -> None:
    """The chart's Role names the one ConfigMap the sidecar watches; a pod annotated
    cninfra.io/programs-configmap watches another, and the Role names that one too."""
    ns = namespace(api, "own-programs")
    pod = app_pod("p", {**INJECT, keys.PROGRAMS_CONFIGMAP: "billing-programs"})
    created(api, ns, pod)

    def names() -> list[str] | None:
        role = get(api, f"{RBAC}/{ns}/roles/{NAME}")
        rule = next((r for r in (role or {}).get("rules", ()) if "configmaps" in r["resources"]),
                    None)
        return None if rule is None else list(rule["resourceNames"])

    wait_until(lambda: names() == sorted([PROGRAMS, "billing-programs"]), 15,
               "the Role naming both ConfigMaps")
    user = f"system:serviceaccount:{ns}:default"
    assert can(api, user, ns, "watch", "configmaps", name="billing-programs")

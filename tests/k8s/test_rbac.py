"""The sidecar runs with exactly the chart's Role: enough for its whole job, and nothing more.

Both sides are checked on a real kube-apiserver: the sidecar process, logged
in as the chart's ServiceAccount, mirrors its state onto its Pod, posts Events
and hot-applies the programs ConfigMap; and the ServiceAccount, asking the
apiserver what it may do (``SelfSubjectAccessReview``, the API behind
``kubectl auth can-i``, and ``SelfSubjectRulesReview``, behind ``--list``), is
told no to anything else, in particular ``patch pods`` and any other ConfigMap.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.cluster import PodEnv, wait_for
from tests.packaging.render import chart_role, chart_watched_configmap, find, helm_template
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess

#: (resource, resourceNames, verbs) of each rule; every rule is in the core API group.
Rule = tuple[str, tuple[str, ...], tuple[str, ...]]


def rules_of(role: dict[str, Any]) -> set[Rule]:
    assert all(rule["apiGroups"] == [""] for rule in role["rules"]), role["rules"]
    return {(resource, tuple(rule.get("resourceNames") or ()), tuple(sorted(rule["verbs"])))
            for rule in role["rules"] for resource in rule["resources"]}


def expected_rules(configmap: str | None) -> set[Rule]:
    rules: set[Rule] = {("pods", (), ("get",)), ("pods/status", (), ("patch",)),
             ("events", (), ("create",))}
    if configmap:
        rules.add(("configmaps", (configmap,), ("get", "list", "watch")))
    return rules


def test_the_chart_role_is_exactly_the_documented_rules() -> None:
    watched = chart_watched_configmap()
    assert watched == "cninfra-test-cninfra-sidecar-programs"
    assert rules_of(chart_role("any")) == expected_rules(watched)


@pytest.mark.parametrize(("values", "configmap"), [
    # No supervisor, no programs ConfigMap: no ConfigMap at all.
    ({"supervisor": {"enabled": False}}, None),
    # k8s.conf names another ConfigMap: that one, and only that one.
    ({"k8s": {"config": {"configmap": {"name": "my-programs"}}}}, "my-programs"),
    # k8s.conf turns the watch off.
    ({"k8s": {"config": {"configmap": {"name": ""}}}}, None),
])
def test_the_role_grants_configmaps_only_for_the_watched_one(
        values: dict[str, Any], configmap: str | None) -> None:
    docs = helm_template(values, release="cninfra-test")
    assert chart_watched_configmap(**values) == (configmap or "")
    assert rules_of(find(docs, "Role")) == expected_rules(configmap)


# -- the sidecar's whole job, with the chart's Role --------------------------------------


def programs_conf(*names: str) -> str:
    return json.dumps({"programs": [
        {"name": name, "executable-path": "/bin/sleep", "executable-args": ["3600"]}
        for name in names]})


def running(proc: SidecarProcess) -> set[str]:
    status, rows = proc.get("/supervisor/programs")
    assert status == 200, rows
    return {row["name"] for row in rows if row.get("pid") and row.get("alive", True)}


def api_requests_by_code(proc: SidecarProcess) -> dict[str, float]:
    """The sidecar's own ``cninfra_k8s_api_requests_total`` by status code."""
    status, text = proc.get("/metrics")
    assert status == 200, text
    counts: dict[str, float] = {}
    for match in re.finditer(r'^cninfra_k8s_api_requests_total\{([^}]*)\} (\S+)$', str(text),
                             re.MULTILINE):
        code = re.search(r'code="(\d+)"', match[1])
        assert code is not None, match[0]
        counts[code[1]] = counts.get(code[1], 0.0) + float(match[2])
    return counts


def test_the_sidecar_does_its_whole_job_with_the_chart_role(
        kube_apiserver: KubeApiServer, config_dir: Path, tmp_path: Path,
        sidecars: list[SidecarProcess]) -> None:
    env = PodEnv(kube_apiserver, tmp_path)
    cm = env.programs_configmap
    env.put_configmap(cm, {"supervisor.conf": programs_conf("alpha")})
    # As the chart writes k8s.conf: the watched ConfigMap is the one the Role names.
    (config_dir / "supervisor.conf").write_text("programs: []\n")
    env.write_k8s_conf(config_dir, configmap={"name": cm})
    proc = SidecarProcess(config_dir, env=env.env())
    sidecars.append(proc)
    proc.start()

    # get pods, patch pods/status: the Pod shows the state and is Ready.
    wait_for(lambda: env.shown() == ("OK", "True"), 20, "the Pod showing OK / Ready")
    # list + watch of the one ConfigMap (kopf): its programs run, and an edit is applied.
    wait_for(lambda: running(proc) == {"alpha"}, 15, "alpha started from the ConfigMap")
    env.put_configmap(cm, {"supervisor.conf": programs_conf("alpha", "beta")})
    wait_for(lambda: running(proc) == {"alpha", "beta"}, 15, "beta started by the edit")
    # create events: the reload is reported on the Pod.
    wait_for(lambda: [e for e in env.events("ConfigMapApplied") if "started beta" in e["message"]],
             10, "a ConfigMapApplied Event for beta")

    # Nothing was refused on the way, neither to the plugin nor to kopf.
    codes = api_requests_by_code(proc)
    assert codes.get("200", 0) > 0 and not set(codes) - {"200", "201"}, codes
    output = proc.output()
    assert "forbidden" not in output.lower(), output
    assert proc.stop() == 0


# -- and nothing more -------------------------------------------------------------------


def can_i(env: PodEnv, verb: str, resource: str, name: str = "", subresource: str = "",
          namespace: str | None = None) -> bool:
    """``kubectl auth can-i VERB RESOURCE[/SUBRESOURCE] [NAME]`` as the ServiceAccount."""
    attributes = {"namespace": namespace or env.namespace, "verb": verb,
                  "resource": resource, "subresource": subresource, "name": name}
    status, review = env.api.request(
        "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
         "spec": {"resourceAttributes": attributes}}, token=env.token)
    assert status == 201, review
    return bool(review["status"].get("allowed"))


def rules_review(api: KubeApiServer, namespace: str, token: str) -> tuple[set[Any], set[str]]:
    """``kubectl auth can-i --list``: (resource rules as (group, resource, names, verbs),
    the verbs of the non-resource rules) of the token's account in ``namespace``."""
    status, review = api.request(
        "POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
         "spec": {"namespace": namespace}}, token=token)
    assert status == 201, review
    assert not review["status"].get("incomplete"), review["status"]
    resources = {(group, resource, tuple(rule.get("resourceNames") or ()),
                  tuple(sorted(rule["verbs"])))
                 for rule in review["status"]["resourceRules"]
                 for group in rule["apiGroups"] for resource in rule["resources"]}
    verbs = {verb for rule in review["status"]["nonResourceRules"] for verb in rule["verbs"]}
    return resources, verbs


def test_the_service_account_may_do_nothing_else(
        kube_apiserver: KubeApiServer, tmp_path: Path) -> None:
    env = PodEnv(kube_apiserver, tmp_path)
    ns, cm = env.namespace, env.programs_configmap
    env.put_configmap(cm, {"supervisor.conf": "programs: []\n"})
    env.put_configmap("db-settings", {"password": "hunter2"})
    env.create_pod("victim")
    kube_apiserver.ensure_namespace("default")

    allowed = [("get", "pods", "victim", ""), ("patch", "pods", "victim", "status"),
               ("get", "configmaps", cm, ""), ("list", "configmaps", cm, ""),
               ("watch", "configmaps", cm, ""), ("create", "events", "", "")]
    denied = [
        # The spec of any pod (its image): the reason the Role has no `patch pods`.
        ("patch", "pods", "victim", ""), ("update", "pods", "victim", ""),
        ("create", "pods", "", ""), ("delete", "pods", "victim", ""), ("list", "pods", "", ""),
        ("watch", "pods", "", ""), ("create", "pods", "victim", "exec"),
        ("update", "pods", "victim", "status"), ("get", "pods", "victim", "log"),
        # Any other ConfigMap, and every ConfigMap at once.
        ("get", "configmaps", "db-settings", ""), ("list", "configmaps", "db-settings", ""),
        ("watch", "configmaps", "db-settings", ""), ("list", "configmaps", "", ""),
        ("watch", "configmaps", "", ""),
        # Not even the programs ConfigMap may be changed.
        ("update", "configmaps", cm, ""), ("patch", "configmaps", cm, ""),
        ("delete", "configmaps", cm, ""),
        ("patch", "events", "", ""), ("delete", "events", "", ""), ("list", "events", "", ""),
        ("get", "secrets", "", ""), ("list", "secrets", "", ""),
        ("create", "serviceaccounts", env.service_account, "token"),
    ]
    wrong = [f"{verb} {res}/{sub} {name}" for verb, res, name, sub in allowed
             if not can_i(env, verb, res, name, sub)]
    wrong += [f"{verb} {res}/{sub} {name} (must be denied)" for verb, res, name, sub in denied
              if can_i(env, verb, res, name, sub)]
    wrong += [f"{verb} {res}/{sub} {name} in namespace default (must be denied)"
              for verb, res, name, sub in allowed
              if can_i(env, verb, res, name, sub, namespace="default")]
    assert not wrong, wrong

    # Everything else: the complete list of what it may do here (`kubectl auth can-i
    # --list`) is the Role's rules plus what any account of the cluster may do,
    # which is asking about itself and reading public documents.
    granted, verbs = rules_review(kube_apiserver, ns, env.token)
    everyone, _ = rules_review(kube_apiserver, ns, kube_apiserver.create_token(ns, "nobody"))
    assert granted == {("", *rule) for rule in expected_rules(cm)} | everyone
    assert verbs == {"get"}
    assert all(set(rule[3]) <= {"get", "list", "watch"} or
               (rule[1].startswith("selfsubject") and rule[3] == ("create",))
               for rule in everyone), everyone

    # The real requests agree. The attack the issue showed (another pod's image) fails...
    victim = f"/api/v1/namespaces/{ns}/pods/victim"
    status, body = env.as_sidecar("PATCH", victim, {"spec": {"containers": [
        {"name": "app", "image": "example.invalid/evil:1"}]}})
    assert status == 403, body
    status, pod = kube_apiserver.request("GET", victim)
    assert status == 200 and pod["spec"]["containers"][0]["image"] == "example.invalid/app:1"
    # ...and so does any read of another ConfigMap, whatever the selector says.
    configmaps = f"/api/v1/namespaces/{ns}/configmaps"

    def selecting(name: str, **query: str) -> str:
        return configmaps + "?" + urllib.parse.urlencode(
            {"fieldSelector": f"metadata.name={name}", **query})

    for path in (f"{configmaps}/db-settings", configmaps, selecting("db-settings"),
                 selecting("db-settings", watch="true", timeoutSeconds="1")):
        status, body = env.as_sidecar("GET", path)
        assert status == 403, f"GET {path}: {status} {body}"
    # The programs ConfigMap is readable the three ways the sidecar reads it.
    for path in (f"{configmaps}/{cm}", selecting(cm), selecting(cm, watch="true",
                                                                 timeoutSeconds="1")):
        status, body = env.as_sidecar("GET", path)
        assert status == 200, f"GET {path}: {status} {body}"

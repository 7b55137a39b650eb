"""The Helm chart as a user meets it: helm lint, what `helm template` renders for
the value sets, the contract between the pod spec and the sidecar, and bad
values refused with the schema's message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

import sidecar
from sidecar.builder import Options, build
from sidecar.servicelabel.config import DEFAULT_LABELS_FILE
from tests.packaging.cases import CASE_IDS, CASES, Case, rendered
from tests.packaging.render import (
    CHART_DIR,
    HelmError,
    chart_role,
    find,
    helm_template,
    parent_chart,
    run_helm,
)

Doc = dict[str, Any]


def pod_spec(docs: list[Doc], name: str = "demo-cninfra-sidecar") -> Doc:
    spec: Doc = find(docs, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def container(spec: Doc, name: str) -> tuple[Doc, str]:
    """The container called ``name`` and the list it is in."""
    for where in ("initContainers", "containers"):
        for c in spec.get(where) or []:
            if c["name"] == name:
                return c, where
    raise AssertionError(f"no container {name!r} in the pod spec")


def env_of(c: Doc) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env", [])}


def mounts_of(c: Doc) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}


def volumes_of(spec: Doc) -> dict[str, Doc]:
    return {v["name"]: v for v in spec.get("volumes", [])}


def field_ref(path: str) -> dict[str, Any]:
    return {"fieldRef": {"fieldPath": path}}


# -- lint -----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_helm_lint_strict(case: Case, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump(case.values))
    args = ["lint", "--strict", str(CHART_DIR), "--values", str(values)]
    if case.kube_version:
        args += ["--kube-version", case.kube_version]
    res = run_helm(*args, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 chart(s) failed" in res.stdout


def test_chart_versions_follow_the_sidecar() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["name"] == "cninfra-sidecar"
    assert chart["appVersion"] == sidecar.__version__
    spec = pod_spec(helm_template())
    sc, _ = container(spec, "cninfra-sidecar")
    assert sc["image"] == f"cninfra-sidecar:{sidecar.__version__}"


# -- the default rendering -------------------------------------------------------


def test_default_rendering_has_the_workload_and_its_shared_objects() -> None:
    docs = helm_template(namespace="shop")
    names = sorted(f"{d['kind']}/{d['metadata']['name']}" for d in docs)
    assert names == [
        "ConfigMap/demo-cninfra-sidecar-config",
        "ConfigMap/demo-cninfra-sidecar-programs",
        "Deployment/demo-cninfra-sidecar",
        "Pod/demo-cninfra-sidecar-test-status",
        "Role/demo-cninfra-sidecar",
        "RoleBinding/demo-cninfra-sidecar",
        "Service/demo-cninfra-sidecar",
        "Service/demo-cninfra-sidecar-metrics",
        "ServiceAccount/demo-cninfra-sidecar",
    ]
    # `helm template | kubectl apply -f -` lands in the release's namespace.
    assert {d["metadata"]["namespace"] for d in docs} == {"shop"}


def test_native_sidecar_starts_before_the_workload() -> None:
    spec = pod_spec(helm_template())
    sc, where = container(spec, "cninfra-sidecar")
    assert where == "initContainers"
    assert sc["restartPolicy"] == "Always"
    _, where = container(spec, "app")
    assert where == "containers"
    # The workload starts once the sidecar's startup probe passed.
    assert sc["startupProbe"]["httpGet"] == {"path": "/liveness", "port": "cninfra-probe"}


@pytest.mark.parametrize(("values", "kube_version", "native"), [
    ({"nativeSidecar": False}, None, False),
    ({"nativeSidecar": True}, "1.28.0", True),
    ({}, "1.28.0", False),  # auto: Kubernetes 1.28 has no native sidecars by default
    ({}, "1.29.0", True),
])
def test_native_or_classic_sidecar(values: dict[str, Any], kube_version: str | None,
                                   native: bool) -> None:
    spec = pod_spec(helm_template(values, kube_version=kube_version))
    sc, where = container(spec, "cninfra-sidecar")
    if native:
        assert where == "initContainers"
        assert sc["restartPolicy"] == "Always"
    else:
        assert where == "containers"
        assert "restartPolicy" not in sc
        assert "initContainers" not in spec
        assert [c["name"] for c in spec["containers"]] == ["app", "cninfra-sidecar"]


def test_sidecar_gets_what_the_sidecar_reads() -> None:
    """The pod spec and the sidecar agree on paths, variables and ports."""
    docs = helm_template()
    spec = pod_spec(docs)
    sc, _ = container(spec, "cninfra-sidecar")
    env, mounts, volumes = env_of(sc), mounts_of(sc), volumes_of(spec)

    # Downward API: the pod's name and namespace, and the label from the pod name.
    assert env["POD_NAME"] == field_ref("metadata.name")
    assert env["POD_NAMESPACE"] == field_ref("metadata.namespace")
    assert env["MICROSERVICE_LABEL"] == field_ref("metadata.name")
    labels_dir = str(Path(DEFAULT_LABELS_FILE).parent)
    podinfo = volumes[mounts[labels_dir]]["downwardAPI"]["items"]
    assert {"path": Path(DEFAULT_LABELS_FILE).name, "fieldRef": {"fieldPath": "metadata.labels"}} \
        in podinfo

    # The config ConfigMap is the config dir.
    assert env["CONFIG_DIR"] == "/etc/sidecar"
    config_cm = volumes[mounts["/etc/sidecar"]]["configMap"]["name"]
    assert config_cm == "demo-cninfra-sidecar-config"
    assert {"http.conf", "logs.conf", "k8s.conf"} <= set(find(docs, "ConfigMap", config_cm)["data"])

    # The programs ConfigMap is a directory of its own, so that the kubelet's
    # atomic swap of the whole directory reaches SUPERVISOR_CONFIG.
    programs_file = Path(env["SUPERVISOR_CONFIG"])
    programs_cm = volumes[mounts[str(programs_file.parent)]]["configMap"]
    assert "items" not in programs_cm and "subPath" not in str(sc["volumeMounts"])
    assert programs_file.name in find(docs, "ConfigMap", programs_cm["name"])["data"]

    # The REST port for status, log levels and metrics; the kubelet's probes go to the
    # probe listener, a port of their own.
    assert env["HTTP_PORT"] == "9191" and env["PROBE_PORT"] == "9192"
    assert sc["ports"] == [{"name": "cninfra-http", "containerPort": 9191, "protocol": "TCP"},
                           {"name": "cninfra-probe", "containerPort": 9192, "protocol": "TCP"}]
    for probe, path in (("startupProbe", "/liveness"), ("livenessProbe", "/liveness"),
                        ("readinessProbe", "/readiness")):
        assert sc[probe]["httpGet"] == {"path": path, "port": "cninfra-probe"}
    assert spec["readinessGates"] == [{"conditionType": "cninfra.io/ready"}]
    # The sidecar started with this environment listens where the probes go.
    built = build(Options(env={"HTTP_PORT": env["HTTP_PORT"], "PROBE_PORT": env["PROBE_PORT"]},
                          config_dir=None))
    assert built.rest.config.port == 9191
    assert built.rest.config.probe_endpoint == "0.0.0.0:9192"


def test_the_probe_port_value_moves_the_probes() -> None:
    spec = pod_spec(helm_template({"sidecar": {"probePort": 9393}}))
    sc, _ = container(spec, "cninfra-sidecar")
    assert env_of(sc)["PROBE_PORT"] == "9393"
    assert {"name": "cninfra-probe", "containerPort": 9393, "protocol": "TCP"} in sc["ports"]
    assert sc["livenessProbe"]["httpGet"]["port"] == "cninfra-probe"
    with pytest.raises(HelmError) as err:
        helm_template({"sidecar": {"probePort": 9191}})
    assert "sidecar.probePort and sidecar.httpPort are both 9191" in err.value.stderr


def test_the_sidecar_is_pid_1_of_its_container() -> None:
    """The process model the README states: a PID namespace per container, the image's
    entrypoint (sidecar run) as its PID 1, so that the kernel ends a program's grandchildren
    with the sidecar."""
    spec = pod_spec(helm_template())
    sc, _ = container(spec, "cninfra-sidecar")
    assert "shareProcessNamespace" not in spec
    assert "command" not in sc  # the ENTRYPOINT stays: no shell in front of the sidecar


def test_sidecar_is_locked_down_and_alone_with_its_token() -> None:
    spec = pod_spec(helm_template())
    sc, _ = container(spec, "cninfra-sidecar")
    app, _ = container(spec, "app")
    ctx = sc["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] == 10001
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    # Read-only root: /tmp is an emptyDir.
    volumes = volumes_of(spec)
    assert "emptyDir" in volumes[mounts_of(sc)["/tmp"]]

    # The API token reaches the sidecar only, not the workload.
    token_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert spec["automountServiceAccountToken"] is False
    projected = volumes[mounts_of(sc)[token_dir]]["projected"]["sources"]
    assert {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}} in projected
    assert token_dir not in mounts_of(app)
    assert spec["serviceAccountName"] == "demo-cninfra-sidecar"


def test_role_is_exactly_what_the_k8s_plugin_needs() -> None:
    """tests/k8s/test_rbac.py proves these rules on the apiserver, with the sidecar."""
    role = chart_role("ns1")
    granted = {
        (res, verb, tuple(rule.get("resourceNames") or ()))
        for rule in role["rules"]
        for res in rule["resources"]
        for verb in rule["verbs"]
        if rule["apiGroups"] == [""]
    }
    programs = ("cninfra-test-cninfra-sidecar-programs",)
    assert granted == {
        ("pods", "get", ()), ("pods/status", "patch", ()),
        ("configmaps", "get", programs), ("configmaps", "list", programs),
        ("configmaps", "watch", programs),
        ("events", "create", ()),
    }
    assert all(rule["apiGroups"] == [""] for rule in role["rules"])
    docs = helm_template(release="cninfra-test", namespace="ns1")
    binding = find(docs, "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "namespace": "ns1",
                                    "name": find(docs, "ServiceAccount")["metadata"]["name"]}]


def test_metrics_service_selects_the_pods_and_asks_to_be_scraped() -> None:
    docs = helm_template()
    svc = find(docs, "Service", "demo-cninfra-sidecar-metrics")
    pod_labels = find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] == "cninfra-http"
    assert svc["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9191",
        "prometheus.io/path": "/metrics",
    }


# -- value sets -------------------------------------------------------------------


def test_everything_set_reaches_the_pod() -> None:
    case = next(c for c in CASES if c.name == "everything")
    docs = rendered(case)
    spec = pod_spec(docs)
    sc, _ = container(spec, "cninfra-sidecar")
    env = env_of(sc)
    assert sc["image"] == "registry.example/cninfra-sidecar@sha256:" + "a" * 64
    assert env["MICROSERVICE_LABEL"] == "vpp-agent-1"
    assert env["INITIAL_LOGLVL"] == "debug"
    assert env["HTTP_PORT"] == "9292" and sc["ports"][0]["containerPort"] == 9292
    assert sc["args"] == ["--log-format=text", "--start-timeout=30s"]
    assert spec["serviceAccountName"] == "custom-sa"
    assert find(docs, "ServiceAccount", "custom-sa")
    assert find(docs, "RoleBinding")["subjects"][0]["name"] == "custom-sa"

    # The admin token Secret is mounted where http.conf says.
    data = find(docs, "ConfigMap", "demo-cninfra-sidecar-config")["data"]
    http = yaml.safe_load(data["http.conf"])
    token_file = Path(http["admin-token-file"])
    secret = volumes_of(spec)[mounts_of(sc)[str(token_file.parent)]]["secret"]
    assert secret["secretName"] == "cninfra-admin"
    assert secret["items"] == [{"key": "token", "path": token_file.name}]
    assert yaml.safe_load(data["etcd.conf"])["endpoints"] == ["etcd.default.svc:2379"]

    programs = find(docs, "ConfigMap", "demo-cninfra-sidecar-programs")["data"]
    supervisor = yaml.safe_load(programs["supervisor.conf"])
    assert supervisor["programs"][0]["name"] == "heartbeat"
    assert supervisor["hooks"] == [{"cmd": "/bin/true", "cmd-args": []}]

    metrics = find(docs, "Service", "demo-cninfra-sidecar-metrics")
    assert metrics["spec"]["type"] == "NodePort"
    # The container port, whatever the Service's own port.
    assert metrics["metadata"]["annotations"]["prometheus.io/port"] == "9292"
    assert metrics["metadata"]["annotations"]["example.com/team"] == "infra"


def test_minimal_set_leaves_out_what_is_off() -> None:
    case = next(c for c in CASES if c.name == "minimal")
    docs = rendered(case)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == ["ConfigMap", "Deployment"]
    spec = pod_spec(docs)
    sc, _ = container(spec, "cninfra-sidecar")
    env = env_of(sc)
    assert "readinessGates" not in spec
    assert spec["serviceAccountName"] == "default"
    assert "MICROSERVICE_LABEL" not in env and "SUPERVISOR_CONFIG" not in env
    assert not {"startupProbe", "livenessProbe", "readinessProbe"} & sc.keys()
    assert "/var/run/secrets/kubernetes.io/serviceaccount" not in mounts_of(sc)
    assert set(volumes_of(spec)) == {"cninfra-config", "cninfra-podinfo", "cninfra-tmp"}
    assert find(docs, "ConfigMap")["data"] is None  # no config files: the defaults


def test_include_only_renders_no_workload() -> None:
    case = next(c for c in CASES if c.name == "include-only")
    kinds = sorted(d["kind"] for d in rendered(case))
    assert kinds == ["ConfigMap", "ConfigMap", "Pod", "Role", "RoleBinding", "Service",
                     "ServiceAccount"]  # the Pod: helm test's


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_rendered_config_files_are_accepted_by_the_sidecar(case: Case, tmp_path: Path) -> None:
    """The sidecar's own loader (as at start-up) takes every file the chart
    writes, mounted where the pod spec mounts it (under tmp_path) and with the
    environment the pod spec gives the sidecar."""
    docs = rendered(case)
    workloads = [d for d in docs if d["kind"] == "Deployment"]
    # Mode (b) has no pod of its own: the default pod shows where things go.
    pod_docs = docs if workloads else helm_template()
    spec = pod_spec(pod_docs)
    sc, _ = container(spec, "cninfra-sidecar")
    volumes = volumes_of(spec)
    root = tmp_path / "pod"

    def in_pod(path: str) -> Path:
        return root / path.lstrip("/")

    for mount_path, volume in mounts_of(sc).items():
        config_map = volumes[volume].get("configMap")
        if config_map is None:
            continue
        directory = in_pod(mount_path)
        directory.mkdir(parents=True)
        for name, text in (find(docs, "ConfigMap", config_map["name"])["data"] or {}).items():
            (directory / name).write_text(text)
    # Secrets the config points at exist in the pod; here one is made up.
    http_conf = in_pod("/etc/sidecar/http.conf")
    if http_conf.exists():
        http = yaml.safe_load(http_conf.read_text())
        if "admin-token-file" in http:
            token = in_pod(http["admin-token-file"])
            token.parent.mkdir(parents=True)
            token.write_text("s3cret\n")
            http["admin-token-file"] = str(token)
            http_conf.write_text(yaml.safe_dump(http))

    env = {"POD_NAME": "demo-abc", "POD_NAMESPACE": "default", "POD_UID": "1234"}
    env |= {k: v for k, v in env_of(sc).items() if isinstance(v, str)}
    for name in ("CONFIG_DIR", "SUPERVISOR_CONFIG"):
        if name in env:
            env[name] = str(in_pod(env[name]))
    build(Options(env=env))

    if "SUPERVISOR_CONFIG" in env:
        data = yaml.safe_load(Path(env["SUPERVISOR_CONFIG"]).read_text())
        assert set(data) == {"programs", "hooks"}


def test_config_change_rolls_the_pods_but_a_programs_change_does_not() -> None:
    def checksum(values: dict[str, Any]) -> str:
        meta = find(helm_template(values), "Deployment")["spec"]["template"]["metadata"]
        return str(meta["annotations"]["checksum/cninfra-config"])

    base = checksum({})
    assert checksum({"config": {"logs": {"default-level": "debug"}}}) != base
    # The k8s plugin applies program changes to the running pods.
    programs = [{"name": "p", "executable-path": "/bin/sleep", "executable-args": ["60"]}]
    assert checksum({"supervisor": {"programs": programs}}) == base


# -- bad values -------------------------------------------------------------------

SCHEMA_FAILURE = "values don't meet the specifications of the schema"


@pytest.mark.parametrize(("values", "message"), [
    ({"sidecar": {"httpPort": -1}}, "at '/sidecar/httpPort': minimum: got -1, want 1"),
    ({"metrics": {"service": {"port": 70000}}},
     "at '/metrics/service/port': maximum: got 70,000, want 65,535"),
    ({"workload": {"ports": [{"name": "http", "containerPort": 0}]}},
     "at '/workload/ports/0/containerPort': minimum: got 0, want 1"),
    ({"unknownKey": 1}, "at '': additional properties 'unknownKey' not allowed"),
    ({"sidecar": {"httpport": 9191}},
     "at '/sidecar': additional properties 'httpport' not allowed"),
    ({"supervisor": {"programs": [{"name": "x"}]}},
     "at '/supervisor/programs/0': missing property 'executable-path'"),
    ({"nativeSidecar": "sometimes"}, "at '/nativeSidecar': value must be one of"),
    ({"sidecar": {"logLevel": "verbose"}}, "at '/sidecar/logLevel': value must be one of"),
    ({"image": {"digest": "latest"}}, "at '/image/digest'"),
    ({"sidecar": {"probes": {"liveness": {"enabled": True, "successThreshold": 2}}}},
     "at '/sidecar/probes/liveness/successThreshold': value must be 1"),
    ({"sidecar": {"probes": {"readiness": {"enabled": True,
                                           "terminationGracePeriodSeconds": 5}}}},
     "at '/sidecar/probes/readiness': additional properties 'terminationGracePeriodSeconds' "
     "not allowed"),
    ({"podDisruptionBudget": {"minAvailable": "half"}},
     "at '/podDisruptionBudget/minAvailable': 'half' does not match pattern"),
    ({"global": {"imagePullSecrets": [3]}}, "at '/global/imagePullSecrets/0'"),
    ({"networkPolicy": {"enabld": True}},
     "at '/networkPolicy': additional properties 'enabld' not allowed"),
])
def test_bad_values_fail_with_the_schema_message(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError) as err:
        helm_template(values)
    assert SCHEMA_FAILURE in err.value.stderr
    assert message in err.value.stderr


def test_bad_values_on_the_command_line_fail_too() -> None:
    with pytest.raises(HelmError) as err:
        helm_template(set_values=["sidecar.httpPort=-5"])
    assert "at '/sidecar/httpPort': minimum: got -5, want 1" in err.value.stderr


@pytest.mark.parametrize(("values", "message"), [
    # The guard rails of issue 22: each names the values and what to do.
    ({"sidecar": {"httpPort": 8080}},
     "sidecar.httpPort=8080 is also workload.ports[0].containerPort (http): the sidecar and "
     "the workload share the pod's network, so only one of them could listen on it. Set "
     "sidecar.httpPort to a free port (the default is 9191), or move the workload's port"),
    ({"workload": {"ports": [{"name": "http", "containerPort": 8080},
                             {"containerPort": 9191}]}},
     "sidecar.httpPort=9191 is also workload.ports[1].containerPort (unnamed)"),
    ({"metrics": {"service": {"type": "LoadBalancer"}}},
     "metrics.service.type=LoadBalancer would publish the sidecar's REST port (status, "
     "metrics, and the admin routes to whoever holds the token) outside the cluster. Keep "
     "metrics.service.type=ClusterIP (Prometheus scrapes from inside), or set "
     "metrics.service.allowExternal=true to publish it on purpose"),
    ({"metrics": {"service": {"type": "NodePort"}}},
     "metrics.service.type=NodePort would publish the sidecar's REST port"),
    ({"k8s": {"enabled": False}},
     "readinessGate.enabled needs k8s.enabled: the k8s plugin is what sets the "
     "cninfra.io/ready condition, and without it the pods would never become Ready. "
     "Set k8s.enabled=true, or readinessGate.enabled=false"),
    ({"adminToken": {"required": True},
      "config": {"http": {"admin-allow": ["127.0.0.0/8", "10.0.0.0/8"]}}},
     'adminToken.required asks for the token from every caller, but '
     'config.http.admin-allow=["127.0.0.0/8","10.0.0.0/8"] admits those networks without it'),
    ({"adminToken": {"required": True}, "config": {"http": {"admin-token": "x"}}},
     "config.http.admin-token and adminToken.required are both set"),
    ({"podDisruptionBudget": {"enabled": True, "minAvailable": 1, "maxUnavailable": 1},
      "workload": {"replicas": 3}},
     "podDisruptionBudget.minAvailable=1 and podDisruptionBudget.maxUnavailable=1 are both "
     "set: a PodDisruptionBudget takes one of them; keep one"),
    ({"podDisruptionBudget": {"enabled": True, "minAvailable": 1}},
     'podDisruptionBudget (minAvailable="1", maxUnavailable="") with workload.replicas=1 lets '
     "no pod be evicted: every node drain would wait forever"),
    ({"podDisruptionBudget": {"enabled": True, "maxUnavailable": "0%"}},
     "lets no pod be evicted"),
    ({"podDisruptionBudget": {"enabled": True}, "workload": {"enabled": False}},
     "podDisruptionBudget.enabled needs workload.enabled"),
    ({"networkPolicy": {"enabled": True}, "workload": {"enabled": False}},
     "networkPolicy.enabled with workload.enabled=false: the policy selects your pods (label "
     "cninfra.io/sidecar) and would close your workload's ports. List the ingress rules for "
     "them in networkPolicy.extraIngress"),
    # Mode (b) renders no container, and is checked all the same.
    ({"workload": {"enabled": False}, "k8s": {"enabled": False}},
     "readinessGate.enabled needs k8s.enabled"),
    ({"config": {"supervisor": {"programs": []}}},
     "config.supervisor: supervisor.conf is written from the supervisor.* values"),
    ({"config": {"http": {"admin-token-file": "/x"}}, "adminToken": {"existingSecret": "s"}},
     "config.http.admin-token-file and adminToken.existingSecret are both set"),
    ({"workload": {"name": "cninfra-sidecar"}},
     'workload.name and sidecar.name are both "cninfra-sidecar"'),
])
def test_inconsistent_values_fail_with_a_message(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError) as err:
        helm_template(values)
    assert message in err.value.stderr


# -- mode (b): the named templates in a user's chart --------------------------------


def test_named_templates_add_the_sidecar_to_a_users_pod(tmp_path: Path) -> None:
    docs = helm_template(chart=parent_chart(tmp_path), release="shop", namespace="ns1")
    spec = pod_spec(docs, "shop-my-app")
    sc, where = container(spec, "cninfra-sidecar")
    assert where == "initContainers" and sc["restartPolicy"] == "Always"
    container(spec, "app")
    assert spec["serviceAccountName"] == find(docs, "ServiceAccount")["metadata"]["name"]
    assert spec["readinessGates"] == [{"conditionType": "cninfra.io/ready"}]
    volumes = volumes_of(spec)
    assert set(mounts_of(sc).values()) <= set(volumes)
    assert volumes["cninfra-config"]["configMap"]["name"] == "shop-cninfra-sidecar-config"
    # The parent's values reach the sidecar's config, and no second workload appears.
    config = find(docs, "ConfigMap", "shop-cninfra-sidecar-config")["data"]
    assert yaml.safe_load(config["logs.conf"]) == {"default-level": "debug"}
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"] == ["shop-my-app"]
    metrics = find(docs, "Service", "shop-cninfra-sidecar-metrics")
    labels = find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert metrics["spec"]["selector"].items() <= labels.items()

"""What a platform team expects of the chart (issue 22): the values it looks for reach
the objects, the admin token can be required from every caller, a NetworkPolicy, a
PodDisruptionBudget, a `helm test` pod, Chart.yaml's metadata, and a values table in
the README that cannot go stale. The guard rails are in test_chart.py; the apiserver's
verdict on each value in test_apiserver.py."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.packaging.cases import CASES, PLATFORM, rendered
from tests.packaging.render import CHART_DIR, REPO, find, helm_template, parent_chart
from tests.packaging.test_chart import container, env_of, mounts_of, pod_spec, volumes_of

Doc = dict[str, Any]


def platform() -> list[Doc]:
    return rendered(next(c for c in CASES if c.name == "platform"))


def test_global_registry_and_pull_secrets_reach_both_images() -> None:
    spec = pod_spec(platform())
    sidecar, _ = container(spec, "cninfra-sidecar")
    app, _ = container(spec, "app")
    assert sidecar["image"] == "mirror.example:5000/hub/cninfra-sidecar:0.1.0"
    # docker.io is the workload's registry: replaced, its path kept.
    assert app["image"] == "mirror.example:5000/hub/nginxinc/nginx-unprivileged:1.27-alpine"
    assert spec["imagePullSecrets"] == [{"name": "mirror-pull"}, {"name": "mirror-pull-2"},
                                        {"name": "regcred"}]


@pytest.mark.parametrize(("repository", "expected"), [
    ("cninfra-sidecar", "m.example/cninfra-sidecar"),
    ("team/cninfra-sidecar", "m.example/team/cninfra-sidecar"),
    ("localhost/cninfra-sidecar", "m.example/cninfra-sidecar"),
    ("registry.example:5000/team/cninfra-sidecar", "m.example/team/cninfra-sidecar"),
])
def test_global_registry_replaces_only_the_registry(repository: str, expected: str) -> None:
    spec = pod_spec(helm_template({"global": {"imageRegistry": "m.example/"},
                                   "image": {"repository": repository}}))
    assert container(spec, "cninfra-sidecar")[0]["image"] == f"{expected}:0.1.0"


def test_common_labels_and_annotations_are_on_every_object() -> None:
    for doc in platform():
        meta = doc["metadata"]
        what = f"{doc['kind']}/{meta['name']}"
        assert meta["labels"]["example.com/team"] == "infra", what
        assert meta["annotations"]["example.com/owner"] == "platform@example.com", what
    deployment = find(platform(), "Deployment")
    template = deployment["spec"]["template"]["metadata"]
    assert template["labels"]["example.com/team"] == "infra"
    # Not in the selector: a label change must not orphan the ReplicaSets.
    assert "example.com/team" not in deployment["spec"]["selector"]["matchLabels"]


def test_sidecar_lifecycle_extra_volumes_and_every_probe_field() -> None:
    spec = pod_spec(platform())
    sidecar, _ = container(spec, "cninfra-sidecar")
    assert sidecar["lifecycle"] == {"preStop": {"sleep": {"seconds": 2}}}
    assert volumes_of(spec)["extra-certs"] == {"name": "extra-certs",
                                               "emptyDir": {"medium": "Memory"}}
    assert mounts_of(sidecar)["/etc/extra-certs"] == "extra-certs"
    probes = PLATFORM["sidecar"]["probes"]
    for kind in ("startup", "liveness", "readiness"):
        probe = sidecar[f"{kind}Probe"]
        fields = {k: v for k, v in probe.items() if k != "httpGet"}
        assert fields == {k: v for k, v in probes[kind].items() if k != "enabled"}, kind


def test_extra_volumes_come_with_the_named_template_in_mode_b(tmp_path: Path) -> None:
    chart = parent_chart(tmp_path)
    values = {"cninfra-sidecar": {
        "sidecar": {"extraVolumes": [{"name": "certs", "emptyDir": {}}],
                    "extraVolumeMounts": [{"name": "certs", "mountPath": "/certs"}]},
        "priorityClassName": "cninfra-high"}}
    spec = pod_spec(helm_template(values, chart=chart, release="shop"), "shop-my-app")
    assert "certs" in volumes_of(spec)
    assert spec["priorityClassName"] == "cninfra-high"


def test_priority_class_on_the_pods() -> None:
    assert pod_spec(platform())["priorityClassName"] == "cninfra-high"
    assert "priorityClassName" not in pod_spec(helm_template())


def test_pod_disruption_budget_selects_the_workload() -> None:
    docs = platform()
    pdb = find(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in pdb["spec"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    selector = find(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["selector"]["matchLabels"] == selector
    default = find(helm_template({"podDisruptionBudget": {"enabled": True},
                                  "workload": {"replicas": 2}}), "PodDisruptionBudget")
    assert default["spec"] == {"selector": {"matchLabels": selector}, "maxUnavailable": 1}


# -- the admin trust model ---------------------------------------------------------------


def test_required_token_closes_loopback_and_mounts_a_generated_secret() -> None:
    docs = platform()
    http = yaml.safe_load(find(docs, "ConfigMap", "demo-cninfra-sidecar-config")
                          ["data"]["http.conf"])
    assert http["admin-allow"] == []  # loopback too needs the token
    secret = find(docs, "Secret")
    assert secret["metadata"]["name"] == "demo-cninfra-sidecar-admin-token"
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) >= 40 and token.isalnum()
    spec = pod_spec(docs)
    sidecar, _ = container(spec, "cninfra-sidecar")
    volume = volumes_of(spec)[mounts_of(sidecar)[str(Path(http["admin-token-file"]).parent)]]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume["secret"]["items"] == [{"key": "token",
                                          "path": Path(http["admin-token-file"]).name}]
    # Readable by the sidecar's non-root user; the workload does not mount it.
    assert volume["secret"]["defaultMode"] == 0o444
    assert volume["name"] not in mounts_of(container(spec, "app")[0]).values()
    # `kubectl exec ... sidecar log set` in the sidecar container finds the token.
    assert env_of(sidecar)["SIDECAR_ADMIN_TOKEN_FILE"] == http["admin-token-file"]


def test_required_token_with_an_existing_secret_generates_none() -> None:
    docs = helm_template({"adminToken": {"required": True, "existingSecret": "mine",
                                         "key": "t"}})
    assert not [d for d in docs if d["kind"] == "Secret"]
    spec = pod_spec(docs)
    secret = volumes_of(spec)["cninfra-admin-token"]["secret"]
    assert secret["secretName"] == "mine" and secret["items"][0]["key"] == "t"


def test_by_default_loopback_is_admin_and_no_token_is_made() -> None:
    docs = helm_template()
    http = yaml.safe_load(find(docs, "ConfigMap", "demo-cninfra-sidecar-config")
                          ["data"]["http.conf"])
    assert http == {"admin-allow": ["127.0.0.0/8", "::1/128"]}
    assert not [d for d in docs if d["kind"] == "Secret"]


def test_security_md_states_the_trust_model() -> None:
    text = (REPO / "SECURITY.md").read_text()
    for needle in ("kubectl port-forward", "loopback", "mesh", "adminToken.required",
                   "networkPolicy.enabled", "excludeInboundPorts"):
        assert needle in text, needle


# -- NetworkPolicy -----------------------------------------------------------------------


def test_network_policy_admits_scrapers_and_the_test_pod_to_the_sidecar_port() -> None:
    docs = platform()
    policy = find(docs, "NetworkPolicy")["spec"]
    pod_labels = find(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["policyTypes"] == ["Ingress"]
    sidecar_rule, workload_rule, extra = policy["ingress"]
    assert sidecar_rule["ports"] == [{"port": 9191, "protocol": "TCP"}]
    test_pod = find(docs, "Pod")
    assert sidecar_rule["from"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "prometheus"}}},
        {"podSelector": {"matchLabels": {"cninfra.io/sidecar-test": "demo-cninfra-sidecar"}}},
    ]
    assert test_pod["metadata"]["labels"]["cninfra.io/sidecar-test"] == "demo-cninfra-sidecar"
    assert workload_rule == {"ports": [{"port": 8080, "protocol": "TCP"}],
                             "from": [{"podSelector": {"matchLabels": {"role": "frontend"}}}]}
    assert extra == {"ports": [{"port": 9999}]}


def test_network_policy_without_scrapers_closes_the_sidecar_port() -> None:
    """An empty `from` would admit everyone: the rule is left out instead."""
    policy = find(helm_template({"networkPolicy": {"enabled": True, "metricsFrom": []},
                                 "tests": {"enabled": False}}), "NetworkPolicy")["spec"]
    assert policy["ingress"] == [{"ports": [{"port": 8080, "protocol": "TCP"}]}]


# -- helm test -----------------------------------------------------------------------


def test_helm_test_pod_runs_sidecar_status_against_the_metrics_service() -> None:
    docs = helm_template(namespace="shop")
    pod = find(docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (status,) = pod["spec"]["containers"]
    service = find(docs, "Service", "demo-cninfra-sidecar-metrics")
    assert status["command"] == [
        "sidecar", "status", "--url",
        f"http://{service['metadata']['name']}.shop.svc:{service['spec']['ports'][0]['port']}"]
    assert status["image"] == container(pod_spec(docs), "cninfra-sidecar")[0]["image"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert status["securityContext"]["runAsNonRoot"] is True
    # No metrics Service, nothing to test through.
    docs = helm_template({"metrics": {"service": {"enabled": False}}})
    assert not [d for d in docs if d["kind"] == "Pod"]


# -- Chart.yaml and the README -------------------------------------------------------------


def test_chart_metadata_a_registry_shows() -> None:
    chart = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert chart["home"].startswith("https://")
    assert chart["sources"] and all(s.startswith("https://") for s in chart["sources"])
    assert chart["maintainers"][0]["name"] and "@" in chart["maintainers"][0]["email"]
    assert chart["kubeVersion"] == ">=1.25.0-0"
    prefix = "data:image/svg+xml;base64,"
    assert chart["icon"].startswith(prefix)
    assert base64.b64decode(chart["icon"][len(prefix):]).startswith(b"<svg")


SCRIPT = REPO / "scripts" / "chart-values-table.py"


def values_table(chart: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--chart", str(chart), *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_the_readme_values_table_is_generated_from_values_yaml() -> None:
    res = values_table(CHART_DIR, "--check")
    assert res.returncode == 0, res.stderr
    readme = (CHART_DIR / "README.md").read_text()
    assert ("| `sidecar.httpPort` | int | `9191` | The REST port (HTTP_PORT): status, log "
            "levels, /metrics (and the probes, for other callers).") in readme
    assert "| `serviceAccount.name` | string | the release's full name" in readme


def test_a_stale_or_incomplete_values_table_is_caught(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    shutil.copytree(CHART_DIR, chart)
    values = chart / "values.yaml"
    original = values.read_text()
    values.write_text(original.replace("httpPort: 9191", "httpPort: 9292"))
    res = values_table(chart, "--check")
    assert res.returncode == 1
    assert "README.md is stale: run scripts/chart-values-table.py" in res.stderr
    assert values_table(chart).returncode == 0  # rewritten...
    assert values_table(chart, "--check").returncode == 0  # ...and fresh again
    assert "| `sidecar.httpPort` | int | `9292` |" in (chart / "README.md").read_text()

    # A new key without a description fails, naming it.
    values.write_text(original.replace("nameOverride: \"\"", "nameOverride: \"\"\nnewKey: 1"))
    res = values_table(chart, "--check")
    assert res.returncode == 1
    assert "no '# --' description for newKey" in res.stderr

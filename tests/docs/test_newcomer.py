"""A newcomer who follows only README.md: its "Add it to your Deployment" commands, run as
written (Helm, kustomize, plain YAML) against a Deployment that already runs, and every
object they apply is accepted by a real kube-apiserver (a server dry run: validation,
defaulting and admission run, nothing is stored).

The README's block runs under bash with the real helm, kustomize and kubectl (built by
scripts/provision) and the real ``sidecar`` command. What a newcomer's machine would do
differently is shimmed, and only that: ``kubectl apply`` gets ``--dry-run=server`` (and
keeps a copy of what it sent), ``helm install`` renders with ``helm template`` and
applies that (helm's own dry run does not ask the apiserver), kustomize is told where
helm is and may read the chart outside the kustomization, ``docker`` is not run. The
kustomization is the one docs/getting-started.md shows, which the README points to.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.packaging.render import helm_bin, kustomize_bin
from tests.servers._util import provisioned
from tests.servers.kube import KubeApiServer

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "shop"
WEB = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": NAMESPACE, "labels": {"app": "web"}},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                                   "ports": [{"containerPort": 8080}]}]}}},
}

SHIMS = r"""
set -euo pipefail
kubectl() {
  if printf '%s\n' "$@" | grep -qx apply; then
    # A pipeline runs this in a subshell: a file of its own per call, not a counter.
    local copy args=() file
    copy=$(mktemp "$OUT/applied-XXXXXX")
    # What is applied, kept for the test: stdin, or the -f files.
    if printf '%s\n' "$@" | grep -qx -- '-'; then
      cat > "$copy"; "$REAL_KUBECTL" "$@" --dry-run=server < "$copy"
    else
      : > "$copy"
      while [ $# -gt 0 ]; do
        args+=("$1")
        if [ "$1" = -f ]; then file="$2"; args+=("$2"); shift
          { cat "$file"; printf '\n---\n'; } >> "$copy"; fi
        shift
      done
      "$REAL_KUBECTL" "${args[@]}" --dry-run=server
    fi
  else
    "$REAL_KUBECTL" "$@"
  fi
}
helm() {
  if [ "$1" = install ]; then shift; "$REAL_HELM" template "$@" | kubectl apply -f -
  else "$REAL_HELM" "$@"; fi
}
kustomize() {
  "$REAL_KUSTOMIZE" "$@" --helm-command "$REAL_HELM" --load-restrictor LoadRestrictionsNone
}
sidecar() { "$PYTHON" -m sidecar "$@"; }
docker() { :; }
"""


def readme_block() -> str:
    """The commands of README.md's "Add it to your Deployment"."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Add it to your Deployment\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, re.S)
    assert match, "README.md: 'Add it to your Deployment' has no sh block"
    return match.group(1)


def documented_kustomization() -> str:
    """The kustomization.yaml that docs/getting-started.md shows (the README links it)."""
    text = (REPO / "docs" / "getting-started.md").read_text(encoding="utf-8")
    match = re.search(r"```yaml\n(\s*# kustomization\.yaml\n.*?)```", text, re.S)
    assert match, "docs/getting-started.md shows no kustomization.yaml"
    return textwrap.dedent(match.group(1))


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.fixture
def shop(kube_apiserver: KubeApiServer) -> KubeApiServer:
    """Namespace shop with the Deployment web already running in it (as ServiceAccount
    default), the newcomer's starting point."""
    kube_apiserver.ensure_namespace(NAMESPACE)
    status, out = kube_apiserver.request(
        "POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", WEB)
    assert status in (201, 409), out
    return kube_apiserver


def test_the_readme_steps_pass_a_server_dry_run(shop: KubeApiServer, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "charts").symlink_to(REPO / "charts")  # what the README's paths refer to
    (work / "web.yaml").write_text(yaml.safe_dump(WEB))
    (work / "kustomization.yaml").write_text(documented_kustomization())
    out = tmp_path / "applied"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable,
           "REAL_KUBECTL": str(provisioned("kubectl", "CNINFRA_KUBECTL",
                                           "scripts/provision/kube.sh")),
           "REAL_HELM": str(helm_bin()), "REAL_KUSTOMIZE": str(kustomize_bin()),
           "KUBECONFIG": str(shop.write_kubeconfig(tmp_path / "kubeconfig")),
           "HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run(["bash", "-c", SHIMS + readme_block()], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"

    # Three ways, each applying the shared objects and the Deployment with the sidecar.
    streams = [documents(p) for p in out.glob("applied-*")]
    webs = [d for stream in streams for d in stream if d.get("kind") == "Deployment"]
    assert len(webs) == 3, [[d.get("kind") for d in s] for s in streams]
    for web in webs:
        assert web["metadata"]["name"] == "web"
        spec = web["spec"]["template"]["spec"]
        sidecar = next(c for c in spec["initContainers"] if c["name"] == "cninfra-sidecar")
        assert sidecar["image"] == "REGISTRY/cninfra-sidecar:0.1.0"
        assert sidecar["restartPolicy"] == "Always"  # a native sidecar
        assert [c["name"] for c in spec["containers"]] == ["web"]  # the workload as it was
        assert spec["readinessGates"] == [{"conditionType": "cninfra.io/ready"}]
    shared = [d for stream in streams for d in stream if d.get("kind") != "Deployment"]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in shared}
    assert {("ConfigMap", "cninfra-sidecar-config"), ("ConfigMap", "cninfra-sidecar-programs"),
            ("Role", "cninfra-sidecar"), ("RoleBinding", "cninfra-sidecar"),
            ("Service", "cninfra-sidecar-metrics")} <= kinds
    binding = next(d for d in shared if d["kind"] == "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default",
                                    "namespace": NAMESPACE}]
    # The ConfigMaps the injected pod mounts are the ones the chart rendered beside it.
    volumes = {v["name"]: v for v in webs[0]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["cninfra-config"]["configMap"]["name"] == "cninfra-sidecar-config"
    assert "(server dry run)" in done.stdout
    assert "deployment.apps/web configured (server dry run)" in done.stdout

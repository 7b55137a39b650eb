"""The chart and manifests/ as Python objects, for tests.

``helm template`` runs the real helm (built by ``scripts/provision/helm.sh``)
and ``kustomize build`` the real kustomize (``scripts/provision/kustomize.sh``);
both keep their state in a temp dir, never in the user's home.

The Kubernetes integration tests take their RBAC from here, so that the
sidecar under test runs with exactly the chart's Role::

    from tests.packaging.render import chart_rbac, chart_role
    docs = chart_rbac("t1")            # [ServiceAccount, Role, RoleBinding]
    role = chart_role("t1")
    sa = docs[0]["metadata"]["name"]
    name = chart_watched_configmap()   # the programs ConfigMap k8s.conf watches

``tests.packaging.kubeapply.install_chart_rbac(api, "t1")`` creates them on a
``KubeApiServer`` and returns the ServiceAccount's name.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.servers._util import provisioned

__all__ = [
    "CHART_DIR",
    "MANIFESTS_DIR",
    "REPO",
    "HelmError",
    "chart_rbac",
    "chart_role",
    "chart_watched_configmap",
    "find",
    "helm_bin",
    "helm_template",
    "kustomize_bin",
    "kustomize_build",
    "parent_chart",
    "run_helm",
]

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "cninfra-sidecar"
MANIFESTS_DIR = REPO / "manifests"

Doc = dict[str, Any]


class HelmError(RuntimeError):
    """helm (or kustomize) exited non-zero; ``stderr`` is what it said."""

    def __init__(self, cmd: Sequence[str], returncode: int, stderr: str) -> None:
        super().__init__(f"{' '.join(cmd[:3])} ... exited with {returncode}:\n{stderr}")
        self.returncode = returncode
        self.stderr = stderr


def helm_bin() -> Path:
    """``CNINFRA_HELM`` or ``$CNINFRA_CACHE/bin/helm``."""
    return provisioned("helm", "CNINFRA_HELM", "scripts/provision/helm.sh")


def kustomize_bin() -> Path:
    """``CNINFRA_KUSTOMIZE`` or ``$CNINFRA_CACHE/bin/kustomize``."""
    return provisioned("kustomize", "CNINFRA_KUSTOMIZE", "scripts/provision/kustomize.sh")


@functools.cache
def _state_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="cninfra-helm-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _env() -> dict[str, str]:
    state = _state_dir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    env |= {
        "HELM_CACHE_HOME": str(state / "cache"),
        "HELM_CONFIG_HOME": str(state / "config"),
        "HELM_DATA_HOME": str(state / "data"),
    }
    # No kubeconfig from the developer's machine: only an explicit --kubeconfig counts.
    env["KUBECONFIG"] = str(state / "no-kubeconfig")
    return env


def run_helm(*args: str, check: bool = True,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run helm; with ``check``, raise HelmError carrying its stderr on failure."""
    cmd = [str(helm_bin()), *args]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, env=_env(),
                         stdin=subprocess.DEVNULL, timeout=timeout)
    if check and res.returncode != 0:
        raise HelmError(cmd, res.returncode, res.stderr)
    return res


def helm_template(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = "demo",
    namespace: str = "default",
    set_values: Iterable[str] = (),
    kube_version: str | None = None,
    chart: Path = CHART_DIR,
    extra_args: Iterable[str] = (),
) -> list[Doc]:
    """The documents ``helm template`` renders, in order (empty ones dropped).

    ``values`` is passed as a values file (``-f``), ``set_values`` as ``--set``;
    raises HelmError when helm refuses (schema, ``fail``, bad YAML)."""
    args = ["template", release, str(chart), "--namespace", namespace]
    if kube_version:
        args += ["--kube-version", kube_version]
    for item in set_values:
        args += ["--set", item]
    values_file: Path | None = None
    if values is not None:
        fd, name = tempfile.mkstemp(prefix="values-", suffix=".json", dir=_state_dir())
        with os.fdopen(fd, "w") as out:
            json.dump(values, out)  # JSON is YAML
        values_file = Path(name)
        args += ["--values", str(values_file)]
    try:
        rendered = run_helm(*args, *extra_args).stdout
    finally:
        if values_file is not None:
            values_file.unlink(missing_ok=True)
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def kustomize_build(path: Path = MANIFESTS_DIR) -> list[Doc]:
    """The documents ``kustomize build PATH`` prints."""
    cmd = [str(kustomize_bin()), "build", str(path)]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, env=_env(),
                         stdin=subprocess.DEVNULL, timeout=60)
    if res.returncode != 0:
        raise HelmError(cmd, res.returncode, res.stderr)
    return [doc for doc in yaml.safe_load_all(res.stdout) if doc]


def find(docs: Iterable[Doc], kind: str, name: str | None = None) -> Doc:
    """The one document of ``kind`` (and ``name``); AssertionError naming what is there."""
    matches = [d for d in docs if d.get("kind") == kind
               and (name is None or d["metadata"]["name"] == name)]
    if len(matches) != 1:
        have = sorted(f"{d.get('kind')}/{d['metadata']['name']}" for d in docs)
        want = f"{kind}/{name}" if name else kind
        raise AssertionError(f"expected one {want}, found {len(matches)} among {have}")
    return matches[0]


def chart_rbac(namespace: str, release: str = "cninfra-test") -> list[Doc]:
    """The chart's ServiceAccount, Role and RoleBinding for ``release`` in
    ``namespace``, exactly as its default values render them."""
    docs = helm_template(release=release, namespace=namespace)
    rbac = [find(docs, kind) for kind in ("ServiceAccount", "Role", "RoleBinding")]
    for doc in rbac:
        doc["metadata"]["namespace"] = namespace
    return rbac


def chart_role(namespace: str, release: str = "cninfra-test") -> Doc:
    """The chart's Role (default values)."""
    return chart_rbac(namespace, release)[1]


def chart_watched_configmap(release: str = "cninfra-test", **values: Any) -> str:
    """The ConfigMap that the rendered k8s.conf tells the sidecar to watch ("" for
    none), with the default values updated by ``values``."""
    docs = helm_template(values or None, release=release)
    config = find(docs, "ConfigMap", f"{release}-cninfra-sidecar-config")["data"] or {}
    k8s = yaml.safe_load(config.get("k8s.conf", "")) or {}
    return str((k8s.get("configmap") or {}).get("name", ""))


def parent_chart(directory: Path) -> Path:
    """A copy of examples/chart-include (a user's chart that includes the
    sidecar's named templates) in ``directory``, with this chart in its charts/,
    where `helm dependency update` would put it."""
    parent = directory / "my-app"
    shutil.copytree(REPO / "examples" / "chart-include", parent)
    shutil.copytree(CHART_DIR, parent / "charts" / "cninfra-sidecar")
    return parent

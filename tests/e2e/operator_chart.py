"""charts/cninfra-operator installed into the test cluster as its README says (``helm
dependency build``, ``helm install``), with the image of the current code for the operator
and for the sidecar it injects: for tests/e2e and bench/operator.py."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.servers.kubecluster import KubeCluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "cninfra-operator"
SIDECAR_CHART = REPO / "charts" / "cninfra-sidecar"
RELEASE = "cninfra-operator"
#: The operator's pods (the chart's selector labels).
SELECTOR = "app.kubernetes.io/name=cninfra-operator"


def install(cluster: KubeCluster, namespace: str, workdir: Path, *values: str) -> str:
    """Install the chart (a copy in ``workdir`` whose dependency points at the sidecar
    chart here) into ``namespace``; the install notes. The images are never pulled."""
    chart = workdir / "cninfra-operator"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("charts"))
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace("file://../cninfra-sidecar",
                                             f"file://{SIDECAR_CHART}"))
    cluster.run("helm", "dependency", "build", str(chart))
    repository, tag = cluster.images["sidecar"].ref.rsplit(":", 1)
    image = [f"--set={prefix}image.{key}={value}" for prefix in ("", "cninfra-sidecar.")
             for key, value in (("repository", repository), ("tag", tag),
                                ("pullPolicy", "Never"))]
    return cluster.run("helm", "install", RELEASE, str(chart), "-n", namespace,
                       "--create-namespace", *image, *values, timeout=180).stdout


def uninstall(cluster: KubeCluster, namespace: str) -> None:
    """``helm uninstall``: the webhook configuration, ClusterRole and peering object are
    cluster-wide, so deleting the namespace would leave them."""
    cluster.run("helm", "uninstall", RELEASE, "-n", namespace, "--wait", "--timeout=60s",
                check=False, timeout=90)

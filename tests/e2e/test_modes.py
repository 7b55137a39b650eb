"""The other two ways to deploy: your own chart including the sidecar (mode b), and
the plain manifests with kustomize, in a namespace other than ``default``."""

from __future__ import annotations

import shutil

import pytest

from tests.e2e.conftest import CHART, REPO, SIDECAR, Namespace, condition, container_status

# A first test also waits for the cluster (and an image rebuild after a code change).
pytestmark = pytest.mark.timeout(600)


def _ready_with_sidecar(ns: Namespace, count: int) -> None:
    for pod in ns.wait_ready(count):
        assert container_status(pod, SIDECAR)["ready"]
        assert condition(pod, "cninfra.io/ready") == "True"
        assert pod["metadata"]["annotations"]["cninfra.io/status"] == "OK"


def test_your_own_chart_includes_the_sidecar(ns: Namespace) -> None:
    # examples/chart-include as a user's chart: the dependency points at the chart.
    chart = ns.tmp / "my-app"
    shutil.copytree(REPO / "examples" / "chart-include", chart)
    meta = chart / "Chart.yaml"
    meta.write_text(meta.read_text().replace("file://../../charts/cninfra-sidecar",
                                             f"file://{CHART}"))
    ns.cluster.run("helm", "dependency", "update", str(chart))
    ns.helm_install(chart=chart, release="my-app")
    _ready_with_sidecar(ns, 2)  # its Deployment has two replicas


def test_kubectl_apply_k_manifests_in_any_namespace(ns: Namespace) -> None:
    # The manifests name the image cninfra-sidecar:0.1.0, as `docker build -t` makes it.
    ns.cluster.ctr("images", "tag", "--force", ns.cluster.images["sidecar"].ref,
                   "docker.io/library/cninfra-sidecar:0.1.0")
    ns.kubectl("apply", "-k", str(REPO / "manifests"))
    _ready_with_sidecar(ns, 1)

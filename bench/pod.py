"""Issue 13 figures: the sidecar in a real pod of the single-node test cluster
(tests/servers/kubecluster.py: containerd + runc, one kubelet, cgroup v1). The image's
size (its uncompressed layers, and the Python base among them); the time from
`helm install` of the chart to the pod Ready (both containers and the readiness gate),
each install in a namespace of its own; the sidecar container's memory at idle as the
kubelet sees it (`container_memory_working_set_bytes` of /metrics/resource: the
cgroup's usage less its inactive file pages, 15 s after Ready); and the latency of
its /readiness and /liveness probes as the kubelet measures them (the mean of
`prober_probe_duration_seconds` over the probes of /metrics/probes, with the probes
every second).

    python -m bench.pod [--installs 3]
"""

from __future__ import annotations

import argparse
import json
import re
import tarfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import Figure, collect, median, report

if TYPE_CHECKING:
    from tests.servers.kubecluster import ImageArchive, KubeCluster

CHART = Path(__file__).resolve().parent.parent / "charts" / "cninfra-sidecar"
SIDECAR = "cninfra-sidecar"
#: Arguments under `python -m bench --quick`.
QUICK_ARGS = ["--installs", "1"]
_MIB = 1024 * 1024


def image_layers(image: ImageArchive) -> list[int]:
    """The sizes of the image's layers, base first, from its docker-archive."""
    with tarfile.open(image.archive) as archive:
        manifest_file = archive.extractfile("manifest.json")
        assert manifest_file is not None
        [manifest] = json.load(manifest_file)
        return [archive.getmember(layer).size for layer in manifest["Layers"]]


def _pod(cluster: KubeCluster, namespace: str) -> dict[str, Any] | None:
    status, pods = cluster.request("GET", f"/api/v1/namespaces/{namespace}/pods")
    items = pods.get("items", []) if status == 200 else []
    return items[0] if items else None


def _ready(pod: dict[str, Any] | None) -> bool:
    conditions = (pod or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def install_to_ready(cluster: KubeCluster, namespace: str, *values: str) -> float:
    """Seconds from `helm install` (as the README has it) to the pod Ready."""
    repository, tag = cluster.images["sidecar"].ref.rsplit(":", 1)
    begin = time.perf_counter()
    cluster.run("helm", "install", "demo", str(CHART), "-n", namespace, "--create-namespace",
                "--set", f"image.repository={repository}", "--set", f"image.tag={tag}", *values)
    while not _ready(_pod(cluster, namespace)):
        if time.perf_counter() - begin > 180:
            raise TimeoutError(f"the pod in {namespace} not Ready in 180 s")
        time.sleep(0.05)
    return time.perf_counter() - begin


def _kubelet_metrics(cluster: KubeCluster, path: str) -> str:
    from tests.servers.kubecluster import NODE_NAME
    return cluster.run("kubectl", "get", "--raw",
                       f"/api/v1/nodes/{NODE_NAME}/proxy/metrics/{path}").stdout


def _samples(text: str, metric: str, **labels: str) -> list[float]:
    found = []
    for line in text.splitlines():
        if line.startswith(metric + "{"):
            have = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
            if all(have.get(k) == v for k, v in labels.items()):
                found.append(float(line.split("}", 1)[1].split()[0]))
    return found


def working_set_mib(cluster: KubeCluster, namespace: str) -> float:
    text = _kubelet_metrics(cluster, "resource")
    [value] = _samples(text, "container_memory_working_set_bytes", namespace=namespace,
                       container=SIDECAR)
    return value / _MIB


def probe_ms(cluster: KubeCluster, namespace: str, probe: str) -> tuple[float, float]:
    """The mean duration of the kubelet's ``probe`` probes of the sidecar, and their count."""
    text = _kubelet_metrics(cluster, "probes")
    labels = {"namespace": namespace, "container": SIDECAR, "probe_type": probe}
    total = sum(_samples(text, "prober_probe_duration_seconds_sum", **labels))
    count = sum(_samples(text, "prober_probe_duration_seconds_count", **labels))
    return (total / count * 1000 if count else float("nan")), count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pod", description=__doc__)
    parser.add_argument("--installs", type=int, default=3, help="helm installs (default 3)")
    args = parser.parse_args(argv)
    from tests.servers.kubecluster import KubeCluster, provisioned_images

    images = provisioned_images()
    layers = image_layers(images["sidecar"])
    report("image size (uncompressed layers)", sum(layers) / _MIB, "MiB")
    report("  of which the Python base (Debian, python3.11)", layers[0] / _MIB, "MiB")
    report("  of which the sidecar (venv, config)", sum(layers[1:]) / _MIB, "MiB",
           "target <= 80 MiB")
    with KubeCluster(images) as cluster:
        times, memory, readiness, liveness = [], [], [], []
        for _ in range(args.installs):
            namespace = f"bench-{uuid.uuid4().hex[:6]}"
            times.append(install_to_ready(
                cluster, namespace, "--set", "sidecar.probes.readiness.periodSeconds=1",
                "--set", "sidecar.probes.liveness.periodSeconds=1"))
            time.sleep(15)  # idle: let start-up garbage go, and the probes add up
            memory.append(working_set_mib(cluster, namespace))
            readiness.append(probe_ms(cluster, namespace, "Readiness")[0])
            liveness.append(probe_ms(cluster, namespace, "Liveness")[0])
            cluster.run("kubectl", "delete", "namespace", namespace, "--wait=false")
    report("helm install to pod Ready (2/2, readiness gate)", median(times), "s",
           "target <= 20 s")
    report("sidecar container working set at idle (cgroup)", median(memory), "MiB",
           "target <= 96 MiB (the chart's request)")
    report("readiness probe, as the kubelet measures it", median(readiness), "ms",
           "target <= 100 ms")
    report("liveness probe, as the kubelet measures it", median(liveness), "ms",
           "target <= 100 ms")


def figures(argv: list[str] | None = None) -> list[Figure]:
    return collect(main, argv)


if __name__ == "__main__":
    main()

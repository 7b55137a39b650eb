"""Issue 18 figures, on the real single-node cluster (tests/servers/kubecluster.py): the
injection webhook's latency as the kube-apiserver sees it, and the operator's fleet view's
lag behind a Pod annotation change. The operator chart is installed as its README says
(two replicas, the self-signed TLS, the image of the current code); the kube-apiserver
calls the webhook through the operator's Service (kube-proxy's rules on the node) for
every Pod created. The latency
is the apiserver's own histogram, ``apiserver_admission_webhook_admission_duration_seconds``
(its buckets: 5 ms, 25 ms, 100 ms, ...), as ``histogram_quantile`` reads it, for pods the
webhook injects and for pods it leaves alone (every pod of the cluster is sent to it);
beside it the client's view of a pod create. The pods carry a scheduling gate: they are
admitted and stored, never scheduled, so the figures are the webhook's, not the kubelet's,
and a thousand of them fit on one node. Fleet lag: ``--fleet-pods`` pods with a sidecar
label; each change PATCHes one pod's ``cninfra.io/status`` annotations (as a sidecar does)
and polls ``GET /fleet/<namespace>/<pod>`` of one replica, at its pod IP, until it shows
the new state. The operator's RSS is that replica's process's.

    python -m bench.operator [--pods 300] [--fleet-pods 500] [--changes 100]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import Figure, collect, percentile, report, rss_mib

if TYPE_CHECKING:
    from tests.servers.kubecluster import KubeCluster

NAMESPACE = "bench"
OPERATOR_NAMESPACE = "cninfra-operator"
WEBHOOK = "pod.inject.cninfra.io"
QUICK_ARGS = ["--pods", "50", "--fleet-pods", "50", "--changes", "20"]
#: Keeps the pods from the scheduler (and so from the kubelet).
GATE = {"name": "cninfra.io/bench"}


def histogram(cluster: KubeCluster, name: str, webhook: str) -> dict[float, float]:
    """The cumulative buckets of the admission duration of ``webhook`` (admit, CREATE)."""
    _, text = cluster.request("GET", "/metrics")
    buckets: dict[float, float] = {}
    for line in str(text).splitlines():
        if not line.startswith(name + "_bucket{") or f'name="{webhook}"' not in line \
                or 'operation="CREATE"' not in line or 'type="admit"' not in line:
            continue
        le = line.split('le="', 1)[1].split('"', 1)[0]
        bound = float("inf") if le == "+Inf" else float(le)
        # One series per rejected="false"/"true": add them up.
        buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {le: count - before.get(le, 0.0) for le, count in after.items()}


def quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear within the bucket the rank falls in."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total == 0:
        return float("nan")
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def create_pods(cluster: KubeCluster, count: int, annotations: dict[str, str],
                prefix: str, labels: dict[str, str] | None = None) -> list[float]:
    """Seconds each create took, as the client sees it."""
    image = cluster.images["workload"].ref
    took = []
    for index in range(count):
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"{prefix}-{index}", "annotations": annotations,
                            "labels": {"app": "bench", **(labels or {})}},
               "spec": {"schedulingGates": [GATE],
                        "containers": [{"name": "app", "image": image,
                                        "imagePullPolicy": "Never"}]}}
        begin = time.perf_counter()
        status, out = cluster.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod)
        took.append(time.perf_counter() - begin)
        if status != 201:
            raise RuntimeError(f"creating {prefix}-{index}: {status} {out}")
    return took


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


def fleet_state(cluster: KubeCluster, base: str, pod: str) -> str | None:
    try:
        found = cluster.in_netns(_get_json, f"{base}/fleet/{NAMESPACE}/{pod}")
    except OSError:
        return None
    return str(found["state_name"])


def _operator_pods(cluster: KubeCluster) -> list[dict[str, Any]]:
    from tests.e2e.operator_chart import SELECTOR

    _, pods = cluster.request(
        "GET", f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods?labelSelector={SELECTOR}")
    ready = [p for p in pods.get("items", [])
             if any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p.get("status", {}).get("conditions", []))]
    return sorted(ready, key=lambda p: str(p["metadata"]["name"]))


def _wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)
    return found


def _pid(cluster: KubeCluster, pod: dict[str, Any]) -> int:
    """The PID (on this machine) of the pod's operator container's process."""
    [status] = pod["status"]["containerStatuses"]
    container = str(status["containerID"]).removeprefix("containerd://")
    for line in cluster.ctr("tasks", "ls").splitlines()[1:]:
        task, pid, *_ = line.split()
        if task == container:
            return int(pid)
    raise RuntimeError(f"no task for container {container}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.operator", description=__doc__)
    parser.add_argument("--pods", type=int, default=300)
    parser.add_argument("--fleet-pods", type=int, default=500)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args(argv)

    from sidecar.k8s import DETAIL_ANNOTATION, STATUS_ANNOTATION
    from tests.e2e import operator_chart
    from tests.servers.kubecluster import KubeCluster, provisioned_images

    work = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    try:
        with KubeCluster(provisioned_images()) as cluster:
            operator_chart.install(cluster, OPERATOR_NAMESPACE, work)
            replicas = _wait("both operator replicas Ready",
                             lambda: len(pods := _operator_pods(cluster)) == 2 and pods, 300)
            cluster.run("kubectl", "create", "namespace", NAMESPACE)
            create_pods(cluster, 5, {"cninfra.io/inject": "true"}, "warm")  # connections, caches

            print("injection webhook: latency as the apiserver sees it")
            name = "apiserver_admission_webhook_admission_duration_seconds"
            before = histogram(cluster, name, WEBHOOK)
            injected = create_pods(cluster, args.pods, {"cninfra.io/inject": "true"}, "inj")
            middle = histogram(cluster, name, WEBHOOK)
            untouched = create_pods(cluster, args.pods, {}, "plain")
            after = histogram(cluster, name, WEBHOOK)
            for what, buckets in (("injecting", delta(middle, before)),
                                  ("leaving a pod alone", delta(after, middle))):
                report(f"webhook, {what}: p50 (apiserver histogram)",
                       quantile(0.5, buckets) * 1000, "ms", f"{args.pods} pods")
                report(f"webhook, {what}: p99 (apiserver histogram)",
                       quantile(0.99, buckets) * 1000, "ms")
                report(f"webhook, {what}: calls under 5 ms",
                       100 * buckets.get(0.005, 0) / max(buckets[float("inf")], 1), "%",
                       higher_is_better=True)
                report(f"webhook, {what}: calls under 25 ms",
                       100 * buckets.get(0.025, 0) / max(buckets[float("inf")], 1), "%",
                       higher_is_better=True)
            report("pod create, injected: p50 (client)", percentile(injected, 50) * 1000, "ms")
            report("pod create, injected: p99 (client)", percentile(injected, 99) * 1000, "ms")
            report("pod create, not asked: p50 (client)", percentile(untouched, 50) * 1000,
                   "ms")

            print("fleet view: lag behind a Pod annotation change")
            label = {"cninfra.io/sidecar": "cninfra-sidecar"}
            begin = time.perf_counter()
            create_pods(cluster, args.fleet_pods, {}, "fleet", label)
            report("create the fleet's pods", time.perf_counter() - begin, "s",
                   f"{args.fleet_pods} pods")
            replica = replicas[0]
            base = f"http://{replica['status']['podIP']}:9191"
            last = f"fleet-{args.fleet_pods - 1}"
            _wait("the last fleet pod in /fleet",
                  lambda: fleet_state(cluster, base, last) is not None, 60)
            lags, after_answer = [], []
            for change in range(args.changes):
                pod = f"fleet-{(change * 7) % args.fleet_pods}"
                state = ("OK", "ERROR")[change % 2]
                number = 1 if state == "OK" else 2
                if fleet_state(cluster, base, pod) == state:
                    state, number = "INIT", 0
                detail = json.dumps({"state": number, "last_change": change, "plugins": {}})
                begin = time.perf_counter()
                status, out = cluster.request(
                    "PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/status",
                    {"metadata": {"annotations": {STATUS_ANNOTATION: state,
                                                  DETAIL_ANNOTATION: detail}}},
                    content_type="application/merge-patch+json")
                answered = time.perf_counter()
                if status != 200:
                    raise RuntimeError(f"PATCH {pod}: {status} {out}")
                while fleet_state(cluster, base, pod) != state:
                    time.sleep(0.001)
                seen = time.perf_counter()
                lags.append(seen - begin)
                after_answer.append(seen - answered)
            report("/fleet reflects an annotation change: p50", percentile(lags, 50) * 1000,
                   "ms", f"{args.changes} changes, {args.fleet_pods} pods (PATCH included)")
            report("/fleet reflects an annotation change: p99", percentile(lags, 99) * 1000,
                   "ms")
            report("/fleet reflects it after the PATCH answered: p50",
                   percentile(after_answer, 50) * 1000, "ms")
            report("/fleet reflects it after the PATCH answered: p99",
                   percentile(after_answer, 99) * 1000, "ms")
            begin = time.perf_counter()
            count = cluster.in_netns(_get_json, f"{base}/fleet")["count"]
            report(f"GET /fleet listing {count} pods", (time.perf_counter() - begin) * 1000,
                   "ms")
            report("operator RSS (one replica)", rss_mib(_pid(cluster, replica)), "MiB",
                   f"{args.pods * 2 + args.fleet_pods + 5} pods watched")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def figures(argv: list[str] | None = None) -> list[Figure]:
    """What ``main(argv)`` reports, as records (``python -m bench`` writes BENCHMARKS.md)."""
    return collect(main, argv)


if __name__ == "__main__":
    main(sys.argv[1:])

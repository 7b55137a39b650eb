"""Issue 18 figures: the injection webhook's latency as the kube-apiserver sees it, and the
operator's fleet view's lag behind a Pod annotation change.

    python -m bench.operator [--pods 300] [--fleet-pods 500] [--changes 100]

A real kube-apiserver (tests/servers/kube.py) calls the operator (``sidecar operator``,
on loopback with its own TLS) for every Pod it creates, through the chart's
MutatingWebhookConfiguration. The latency is the apiserver's own histogram,
``apiserver_admission_webhook_admission_duration_seconds`` (its buckets: 5 ms, 25 ms,
100 ms, ...), as ``histogram_quantile`` reads it, for pods the webhook injects and for
pods it leaves alone (every pod of the cluster is sent to it); beside it the
operator's own count of the same calls and the client's view of a pod create with and
without the webhook. Fleet lag: ``--fleet-pods`` pods with a sidecar label; each change
PATCHes one pod's ``cninfra.io/status`` annotations (as a sidecar does) and polls
``GET /fleet/<namespace>/<pod>`` until it shows the new state.
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
from typing import Any

from bench._common import Figure, collect, percentile, report, rss_mib

NAMESPACE = "bench"
WEBHOOK = "pod.inject.cninfra.io"
QUICK_ARGS = ["--pods", "50", "--fleet-pods", "50", "--changes", "20"]


def histogram(api: Any, name: str, webhook: str) -> dict[float, float]:
    """The cumulative buckets of the admission duration of ``webhook`` (admit, CREATE)."""
    _, text = api.request("GET", "/metrics")
    buckets: dict[float, float] = {}
    for line in str(text).splitlines():
        if not line.startswith(name + "_bucket{") or f'name="{webhook}"' not in line \
                or 'operation="CREATE"' not in line or 'type="admit"' not in line:
            continue
        le = line.split('le="', 1)[1].split('"', 1)[0]
        buckets[float("inf") if le == "+Inf" else float(le)] = float(line.rsplit(" ", 1)[1])
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


def create_pods(api: Any, count: int, annotations: dict[str, str],
                prefix: str, labels: dict[str, str] | None = None) -> list[float]:
    """Seconds each create took, as the client sees it."""
    took = []
    for index in range(count):
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"{prefix}-{index}", "annotations": annotations,
                            "labels": {"app": "bench", **(labels or {})}},
               "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}}
        begin = time.perf_counter()
        status, out = api.request("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", pod)
        took.append(time.perf_counter() - begin)
        if status != 201:
            raise RuntimeError(f"creating {prefix}-{index}: {status} {out}")
    return took


def fleet_state(port: int, pod: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/fleet/{NAMESPACE}/{pod}",
                                    timeout=2) as reply:
            return str(json.loads(reply.read())["state_name"])
    except OSError:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=300)
    parser.add_argument("--fleet-pods", type=int, default=500)
    parser.add_argument("--changes", type=int, default=100)
    args = parser.parse_args(argv)

    from sidecar.k8s import DETAIL_ANNOTATION, STATUS_ANNOTATION
    from tests.operator.cluster import merge_patch
    from tests.operator.harness import OperatorProcess, install_webhook
    from tests.servers.kube import KubeApiServer

    work = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    api = KubeApiServer()
    operator: OperatorProcess | None = None
    try:
        api.start()
        api.ensure_namespace(NAMESPACE)
        operator = OperatorProcess(api, work / "operator")
        install_webhook(api, operator.url, operator.ca.read_bytes())
        operator.start()
        assert operator.proc is not None
        create_pods(api, 5, {"cninfra.io/inject": "true"}, "warm")  # connections, caches

        print("injection webhook: latency as the apiserver sees it")
        name = "apiserver_admission_webhook_admission_duration_seconds"
        before = histogram(api, name, WEBHOOK)
        injected = create_pods(api, args.pods, {"cninfra.io/inject": "true"}, "inj")
        middle = histogram(api, name, WEBHOOK)
        untouched = create_pods(api, args.pods, {}, "plain")
        after = histogram(api, name, WEBHOOK)
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
        report("pod create, not asked: p50 (client)", percentile(untouched, 50) * 1000, "ms")

        print("fleet view: lag behind a Pod annotation change")
        label = {"cninfra.io/sidecar": "cninfra-sidecar"}
        begin = time.perf_counter()
        create_pods(api, args.fleet_pods, {}, "fleet", label)
        report("create the fleet's pods", time.perf_counter() - begin, "s",
               f"{args.fleet_pods} pods")
        last = f"fleet-{args.fleet_pods - 1}"
        while fleet_state(operator.http_port, last) is None:
            time.sleep(0.005)
        lags, after_answer = [], []
        for change in range(args.changes):
            pod = f"fleet-{(change * 7) % args.fleet_pods}"
            state = ("OK", "ERROR")[change % 2]
            number = 1 if state == "OK" else 2
            if fleet_state(operator.http_port, pod) == state:
                state, number = "INIT", 0
            detail = json.dumps({"state": number, "last_change": change, "plugins": {}})
            begin = time.perf_counter()
            merge_patch(api, f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/status",
                        {"metadata": {"annotations": {STATUS_ANNOTATION: state,
                                                      DETAIL_ANNOTATION: detail}}})
            answered = time.perf_counter()
            while fleet_state(operator.http_port, pod) != state:
                time.sleep(0.001)
            seen = time.perf_counter()
            lags.append(seen - begin)
            after_answer.append(seen - answered)
        report("/fleet reflects an annotation change: p50", percentile(lags, 50) * 1000, "ms",
               f"{args.changes} changes, {args.fleet_pods} pods (PATCH included)")
        report("/fleet reflects an annotation change: p99", percentile(lags, 99) * 1000, "ms")
        report("/fleet reflects it after the PATCH answered: p50",
               percentile(after_answer, 50) * 1000, "ms")
        report("/fleet reflects it after the PATCH answered: p99",
               percentile(after_answer, 99) * 1000, "ms")
        begin = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{operator.http_port}/fleet",
                                    timeout=10) as reply:
            count = json.loads(reply.read())["count"]
        report(f"GET /fleet listing {count} pods", (time.perf_counter() - begin) * 1000, "ms")
        report("operator RSS", rss_mib(operator.proc.pid), "MiB",
               f"{args.pods * 2 + args.fleet_pods + 5} pods watched")
    finally:
        if operator is not None:
            operator.kill()
        api.close()
        shutil.rmtree(work, ignore_errors=True)


def figures(argv: list[str] | None = None) -> list[Figure]:
    """What ``main(argv)`` reports, as records (``python -m bench`` writes BENCHMARKS.md)."""
    return collect(main, argv)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Issue 8 figures: what the k8s plugin costs a pod — start time and RSS with it
enabled against without it, and the import cost of kopf and the Kubernetes client.

    python -m bench.k8s [--starts 5]

Three sidecars on the example config: without the plugin; with it (Pod status
and Events: no kopf, aiohttp only); with it and a programs ConfigMap (kopf
embedded). Outside a cluster the credentials come from a kubeconfig, which
imports the ``kubernetes`` client; in a pod they are files and it is not
imported, so the in-cluster cost is the "with k8s" figure minus that import.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench._common import (
    EXAMPLES,
    Figure,
    collect,
    median,
    report,
    rss_mib,
    start_sidecar,
    stop,
    wait_ready,
)

if TYPE_CHECKING:
    from tests.servers.kube import KubeApiServer

POD = "bench-0"
NAMESPACE = "bench"


#: Arguments under `python -m bench --quick`.
QUICK_ARGS = ["--starts", "2"]


def import_cost(statement: str, runs: int = 5) -> float:
    """Median seconds a fresh interpreter (with the sidecar core loaded) takes to run an
    import statement."""
    code = ("import time, sidecar.builder, aiohttp; t = time.perf_counter(); "
            f"{statement}; print(time.perf_counter() - t)")
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                  text=True, check=True).stdout) for _ in range(runs)]
    return median(times)


def pod_ready(api: KubeApiServer, namespace: str) -> bool:
    status, pod = api.request("GET", f"/api/v1/namespaces/{namespace}/pods/{POD}")
    if status != 200:
        return False
    return any(c["type"] == "cninfra.io/ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions") or ())


def measure(config_dir: Path, starts: int, env: dict[str, str], api: KubeApiServer | None,
            namespace: str) -> tuple[list[float], list[float], list[float]]:
    ready: list[float] = []
    on_pod: list[float] = []
    rss: list[float] = []
    for _ in range(starts):
        begin = time.perf_counter()
        proc, port = start_sidecar(config_dir, env=env)
        try:
            wait_ready(proc, port, timeout=60)
            ready.append(time.perf_counter() - begin)
            if api is not None:
                while not pod_ready(api, namespace):
                    time.sleep(0.01)
                on_pod.append(time.perf_counter() - begin)
            time.sleep(1.0)
            rss.append(rss_mib(proc.pid))
        finally:
            stop(proc)
        if api is not None:  # the next start begins from a Pod that shows nothing
            api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{POD}")
            create_pod(api, namespace)
    return ready, on_pod, rss


def create_pod(api: KubeApiServer, namespace: str) -> None:
    status, body = api.request("POST", f"/api/v1/namespaces/{namespace}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": POD},
        "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}],
                 "readinessGates": [{"conditionType": "cninfra.io/ready"}]}})
    if status != 201:
        raise RuntimeError(f"creating the Pod: {status} {body}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--starts", type=int, default=5)
    args = parser.parse_args(argv)

    from tests.servers.kube import KubeApiServer

    print("k8s plugin: start time and RSS with and without it")
    report("import kopf, plainly (it imports the kubernetes client)",
           import_cost("import kopf") * 1000, "ms")
    report("import kopf as the plugin does (clients hidden)",
           import_cost("import sidecar.k8s._operator as o; o._import_kopf()") * 1000, "ms")
    report("import kubernetes.config (out of cluster only)",
           import_cost("import kubernetes.config") * 1000, "ms")
    report("import sidecar.k8s (in a pod: no kopf, no client)",
           import_cost("import sidecar.k8s") * 1000, "ms")

    work = Path(tempfile.mkdtemp(prefix="bench-k8s-"))
    api = KubeApiServer()
    try:
        api.start()
        api.ensure_namespace(NAMESPACE)
        create_pod(api, NAMESPACE)
        kubeconfig = api.write_kubeconfig(work / "kubeconfig", namespace=NAMESPACE)
        out_of_cluster = {"POD_NAME": POD, "POD_NAMESPACE": NAMESPACE,
                          "KUBERNETES_SERVICE_HOST": ""}
        # In a pod: the ServiceAccount files and the service address (the code path
        # that imports no Kubernetes client), here pointing at the test apiserver.
        account = work / "serviceaccount"
        account.mkdir()
        (account / "token").write_text(api.admin_token)
        shutil.copy(api.ca_file, account / "ca.crt")
        (account / "namespace").write_text(NAMESPACE)
        in_pod = {**out_of_cluster, "KUBERNETES_SERVICE_HOST": "127.0.0.1",
                  "KUBERNETES_SERVICE_PORT": str(api.port)}
        status, out = api.request("POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps", {
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "programs"},
            "data": {"supervisor.conf": "programs: []\n"}})
        if status != 201:
            raise RuntimeError(f"creating the ConfigMap: {status} {out}")

        def config(name: str, k8s: dict[str, object] | None = None, *,
                   supervisor: bool = False) -> Path:
            directory = work / name
            shutil.copytree(EXAMPLES, directory)
            if supervisor:
                (directory / "supervisor.conf").write_text("programs: []\n")
            if k8s:
                (directory / "k8s.conf").write_text(json.dumps(k8s))
            return directory

        sa: dict[str, object] = {"service-account-dir": str(account)}
        variants: list[tuple[str, Path, dict[str, str], KubeApiServer | None]] = [
            ("without k8s", EXAMPLES, out_of_cluster, None),
            ("with k8s in a pod (Pod status, Events)", config("pod", sa), in_pod, api),
            ("with k8s and a kubeconfig", config("kc", {"kubeconfig": str(kubeconfig)}),
             out_of_cluster, api),
            ("supervisor, without k8s", config("sup", supervisor=True), out_of_cluster, None),
            ("supervisor, with k8s in a pod + ConfigMap (kopf)",
             config("kopf", {**sa, "configmap": {"name": "programs"}}, supervisor=True),
             in_pod, api),
        ]
        results = {}
        for name, directory, env, server in variants:
            results[name] = measure(directory, args.starts, env, server, NAMESPACE)
        for name, (ready, on_pod, rss) in results.items():
            report(f"{name}: start to /readiness 200", median(ready) * 1000, "ms",
                   f"median of {len(ready)}")
            if on_pod:
                report(f"{name}: start to Pod condition True", median(on_pod) * 1000, "ms")
            report(f"{name}: RSS", median(rss), "MiB")
        base = results["without k8s"]
        for name in ("with k8s in a pod (Pod status, Events)", "with k8s and a kubeconfig"):
            plain = results[name]
            report(f"{name}: extra start time",
                   (median(plain[0]) - median(base[0])) * 1000, "ms")
            report(f"{name}: extra RSS", median(plain[2]) - median(base[2]), "MiB")
        sup = results["supervisor, without k8s"]
        kopf_ = results["supervisor, with k8s in a pod + ConfigMap (kopf)"]
        report("k8s plugin with kopf: extra start time",
               (median(kopf_[0]) - median(sup[0])) * 1000, "ms", "against the supervisor alone")
        report("k8s plugin with kopf: extra RSS", median(kopf_[2]) - median(sup[2]), "MiB")
    finally:
        api.close()
        shutil.rmtree(work, ignore_errors=True)


def figures(argv: list[str] | None = None) -> list[Figure]:
    """What ``main(argv)`` reports, as records (``python -m bench`` writes BENCHMARKS.md)."""
    return collect(main, argv)


if __name__ == "__main__":
    main(sys.argv[1:])

"""The single-node cluster: a pod runs and reaches the API, and neither a stop nor a
test run that died leaves anything of the node on the machine."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._wait import wait_until
from tests.servers import _machine
from tests.servers._kubedns import resolve
from tests.servers._util import cache_dir
from tests.servers.kubecluster import (
    API_SERVICE_IP,
    CLUSTER_DOMAIN,
    FIXED_PATHS,
    NETNS_PATH,
    NODE_IP,
    POD_CGROUP,
    REPO,
    RUN_DIR,
    KubeCluster,
)

pytestmark = pytest.mark.timeout(600)


def _pod(name: str, image: str, namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "web", "image": image, "imagePullPolicy": "Never",
                                 "readinessProbe": {"httpGet": {"path": "/", "port": 8080},
                                                    "periodSeconds": 1}}],
                 "terminationGracePeriodSeconds": 5},
    }


def test_a_pod_runs_answers_and_reaches_the_api(kube_cluster: KubeCluster) -> None:
    ns = f"smoke-{uuid.uuid4().hex[:6]}"
    kube_cluster.run("kubectl", "create", "namespace", ns)
    try:
        pod = _pod("web", kube_cluster.images["workload"].ref, ns)
        kube_cluster.run("kubectl", "apply", "-f", "-", input=json.dumps(pod))
        kube_cluster.run("kubectl", "-n", ns, "wait", "--for=condition=Ready", "pod/web",
                         "--timeout=120s", timeout=150)
        ip = kube_cluster.kubectl_json("-n", ns, "get", "pod", "web")["status"]["podIP"]
        # The kubelet's probe got through; so does curl from the node's namespace...
        assert kube_cluster.run("curl", "-sf", f"http://{ip}:8080/").stdout == "demo workload\n"
        # ...and the pod reaches the API server at the kubernetes Service (kube-proxy).
        reach = f"import socket; socket.create_connection(('{API_SERVICE_IP}', 443), 5).close()"
        kube_cluster.run("kubectl", "-n", ns, "exec", "web", "--", "python3", "-c", reach)
        # The kubelet set machine-wide sysctls at its start; the machine has its own back.
        state = json.loads(Path("/run/cninfra-kube.machine.json").read_text())
        assert _machine.read_sysctls() == state["sysctls"]
    finally:
        kube_cluster.run("kubectl", "delete", "namespace", ns, "--wait=false", check=False)


def test_services_by_name_from_pods_and_by_ip_from_the_node(kube_cluster: KubeCluster) -> None:
    ns = f"svc-{uuid.uuid4().hex[:6]}"
    kube_cluster.run("kubectl", "create", "namespace", ns)
    try:
        image = kube_cluster.images["workload"].ref
        web, client = _pod("web", image, ns), _pod("client", image, ns)
        web["metadata"]["labels"] = {"app": "web"}  # type: ignore[index]
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                   "spec": {"selector": {"app": "web"},
                            "ports": [{"port": 80, "targetPort": 8080}]}}
        for doc in (web, client, service):
            kube_cluster.run("kubectl", "-n", ns, "apply", "-f", "-", input=json.dumps(doc))
        kube_cluster.run("kubectl", "-n", ns, "wait", "--for=condition=Ready", "pod/web",
                         "pod/client", "--timeout=120s", timeout=150)
        # A pod: the short name through its search path, the cluster DNS, then kube-proxy's
        # rules from the Service's IP to the other pod (once they follow its endpoint:
        # the pod Ready, its EndpointSlice, kube-proxy's next sync).
        fetch = "import urllib.request as u; print(u.urlopen('http://web/', timeout=5).read())"

        def fetched() -> str | None:
            done = kube_cluster.run("kubectl", "-n", ns, "exec", "client", "--", "python3",
                                    "-c", fetch, check=False)
            return done.stdout.strip() if done.returncode == 0 else None
        assert wait_until(fetched, 30, "http://web/ from the client pod") \
            == "b'demo workload\\n'"
        resolv = kube_cluster.run("kubectl", "-n", ns, "exec", "client", "--", "cat",
                                  "/etc/resolv.conf").stdout
        assert f"search {ns}.svc.{CLUSTER_DOMAIN}" in resolv
        # The node (where the API server calls webhooks from): the Service's IP.
        ip = kube_cluster.kubectl_json("-n", ns, "get", "service", "web")["spec"]["clusterIP"]
        assert kube_cluster.run("curl", "-sf", f"http://{ip}/").stdout == "demo workload\n"
        dns = kube_cluster.in_netns
        assert dns(resolve, NODE_IP, f"web.{ns}.svc.{CLUSTER_DOMAIN}") == [ip]
        assert dns(resolve, NODE_IP, f"nothing.{ns}.svc.{CLUSTER_DOMAIN}") == "rcode 3"  # NXDOMAIN
    finally:
        kube_cluster.run("kubectl", "delete", "namespace", ns, "--wait=false", check=False)


@dataclass(frozen=True)
class _Machine:
    """What the node may change on the machine, as seen from outside."""

    sysctls: dict[str, str]
    #: What kube-proxy could change for the whole machine (it runs in the namespace).
    net_sysctls: dict[str, str]
    mounts: list[str]
    cgroups: list[str]
    paths: list[str]
    processes: list[int]


_NET_SYSCTLS = ("net.netfilter.nf_conntrack_max",
                "net.netfilter.nf_conntrack_tcp_timeout_established",
                "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
                "net.ipv4.conf.all.route_localnet", "net.ipv4.ip_forward",
                "net.bridge.bridge-nf-call-iptables")


def _snapshot() -> _Machine:
    node_dir = str(cache_dir() / "kube-node")
    mounts = sorted(m for m in _machine.mount_points()
                    if m.startswith(("/run", "/var/lib", "/var/log", node_dir)))
    cgroups = sorted(str(h / POD_CGROUP) for h in Path("/sys/fs/cgroup").iterdir()
                     if (h / POD_CGROUP).exists())
    paths = sorted(str(p) for p in (*FIXED_PATHS, RUN_DIR, NETNS_PATH) if p.exists())
    return _Machine(_machine.read_sysctls(), _machine.read_sysctls(_NET_SYSCTLS), mounts,
                    cgroups, paths, _node_processes())


def _node_processes() -> list[int]:
    """The processes of a node: its own (they name its run dir) and its pods'."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = _machine.cmdline(int(entry.name))
                groups = _machine.cgroup_paths(int(entry.name))
            except OSError:
                continue
            if str(RUN_DIR) in line or any(g.startswith(f"/{POD_CGROUP}/") for g in groups):
                found.append(int(entry.name))
    return found


# A test run of its own, which dies (SIGKILL) with a pod running.
_CHILD = """
import json, sys
sys.path.insert(0, {repo!r})
from tests.servers.kubecluster import KubeCluster, provisioned_images
cluster = KubeCluster(provisioned_images())
cluster.start()
cluster.run("kubectl", "apply", "-f", "-", input={pod!r})
cluster.run("kubectl", "wait", "--for=condition=Ready", "pod/web", "--timeout=120s", timeout=150)
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_stop_and_a_run_that_died_leave_the_machine_as_found(
        kube_cluster: KubeCluster) -> None:
    kube_cluster.close()
    found = _snapshot()
    assert found.processes == [] and str(RUN_DIR) not in found.paths
    pod = json.dumps(_pod("web", kube_cluster.images["workload"].ref, "default"))
    try:
        with subprocess.Popen([sys.executable, "-c", _CHILD.format(repo=str(REPO), pod=pod)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as child:
            assert child.stdout is not None and child.stderr is not None
            line = child.stdout.readline()
            child.kill()  # SIGKILL: no cleanup of its own
            child.wait(10)
            if line != "ready\n":
                pytest.fail(f"the child cluster did not start: {child.stderr.read()[-3000:]}")
        # Its node's processes, mounts, cgroups and namespace stay behind...
        left = _snapshot()
        assert left.processes and left.cgroups and str(NETNS_PATH) in left.paths
        # ...and the next start cleans them up first.
        kube_cluster.start()
        assert not set(left.processes) & set(_node_processes())
        kube_cluster.close()
        assert _snapshot() == found
    finally:
        kube_cluster.close()  # the next test that needs it starts it again

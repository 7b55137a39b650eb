"""A real single-node Kubernetes for the end-to-end tests: pods run, the kubelet probes.

containerd and runc (Debian's), the control plane (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler), one kubelet and kube-proxy, built by
``scripts/provision`` (``kube.sh``, ``node.sh``, ``images.sh``), and a cluster DNS
(``_kubedns.py``). Everything runs in a network namespace of its own (``NETNS``):
the node's address sits on an empty bridge there, the pods get addresses from a
bridge CNI, kube-proxy's iptables rules there take Service IPs to their endpoints
(the ``kubernetes`` Service's to the API server), and the DNS answers
``<service>.<namespace>.svc.cluster.local``: what a pod, a ``helm test`` hook or the
API server calling a webhook Service find on a real node. No port of the machine is
used and no packet leaves the namespace. The machine's facts that shape this are
in the team's notes (cgroup v1, containerd 1.6, no CAP_SYS_RESOURCE).

    with KubeCluster(images) as cluster:          # images: provisioned_images()
        cluster.run("kubectl", "get", "nodes")    # in the namespace, with its kubeconfig
        status, pod = cluster.request("GET", "/api/v1/namespaces/x/pods/y")

Only one cluster can run on a machine (the kubelet and containerd use fixed
paths): a lock file serialises test runs. What a run that died left behind
(processes, mounts, cgroups, the namespace, the kubelet's sysctls) is cleaned up
before the next start, and every stop puts the machine back as it was found.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import secrets
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

from . import _machine
from ._kubedns import resolve
from ._kubenode import (
    CONTAINERD_CONFIG,
    KUBE_PROXY_CONFIG,
    KUBELET_CONFIG,
    ImageArchive,
    make_pki,
    provisioned_images,
)
from ._process import ServerProcess, wait_ready
from ._server import ManagedServer
from ._util import cache_dir, provisioned
from .etcd import etcd_binary

__all__ = ["ImageArchive", "KubeCluster", "provisioned_images"]

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
NETNS = "cninfra-kube"
NETNS_PATH = Path("/run/netns") / NETNS
#: The node's address (on an empty bridge: this kernel has no dummy links).
NODE_IP = "10.213.0.1"
NODE_NAME = "cninfra-node"
POD_CIDR = "10.214.0.0/24"
SERVICE_CIDR = "10.215.0.0/24"
#: The ``kubernetes`` Service: what pods reach the API server at.
API_SERVICE_IP = "10.215.0.1"
API_PORT = 6443
#: The cluster's DNS domain; its server listens on the node's address, port 53.
CLUSTER_DOMAIN = "cluster.local"
#: kube-proxy's health endpoint (200 once its rules are in place).
KUBE_PROXY_HEALTHZ = "127.0.0.1:10256"
#: An etcd for the workloads (the sidecar's status keys) at the node's address.
POD_ETCD_PORT = 22379
#: Everything of one run; removed at the end.
RUN_DIR = Path("/run/cninfra-kube")
LOCK_FILE = Path("/run/cninfra-kube.lock")
#: What the machine looked like before the node started (outlives a crashed run).
STATE_FILE = Path("/run/cninfra-kube.machine.json")
#: Paths the kubelet, containerd, CNI and ``ip netns`` use whatever their flags say.
FIXED_PATHS = tuple(Path(p) for p in (
    "/var/log/containers", "/var/log/pods", "/var/lib/kubelet", "/var/lib/cni",
    "/run/containerd", "/run/netns", "/var/lib/containers",
))
#: The kubelet's pod cgroups (cgroupfs driver, default cgroup root).
POD_CGROUP = "kubepods"
_CLONE_NEWNET = 0x40000000


def _binary(name: str) -> Path:
    return provisioned(name, "CNINFRA_" + name.upper().replace("-", "_"),
                       "scripts/provision/kube.sh")


def _enter_netns() -> None:
    """Move the calling thread (only it) into the cluster's network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_PATH, os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({NETNS_PATH}): {os.strerror(err)}")
    finally:
        os.close(fd)


class KubeCluster(ManagedServer):
    """The cluster, from a clean machine to a Ready node, and back.

    ``images`` are imported into containerd (only when their ID changed: the
    containerd root lives in the provisioning cache). ``lock_timeout``: how long
    to wait for another test run's cluster to end.
    """

    what = "kubernetes cluster"

    def __init__(self, images: Mapping[str, ImageArchive], *, startup_timeout: float = 180.0,
                 lock_timeout: float = 1800.0) -> None:
        self.images = dict(images)
        self.startup_timeout = startup_timeout
        self.lock_timeout = lock_timeout
        super().__init__(RUN_DIR, "cninfra-kube-")
        self.node_dir = cache_dir() / "kube-node"
        self.containerd_root = self.node_dir / "containerd"
        self.log_dir = self.node_dir / "logs"
        self.pki = RUN_DIR / "pki"
        self.kubeconfig = RUN_DIR / "admin.kubeconfig"
        self.socket = RUN_DIR / "containerd.sock"
        self.admin_token = secrets.token_urlsafe(32)
        self._lock: IO[str] | None = None
        self._machine: _machine.MachineState | None = None
        self._netns_thread: ThreadPoolExecutor | None = None
        self._ssl: ssl.SSLContext | None = None
        self._procs: dict[str, ServerProcess] = {}
        self._running = False

    # -- what tests use -------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    @property
    def api_url(self) -> str:
        return f"https://{NODE_IP}:{API_PORT}"

    @property
    def pod_etcd_endpoint(self) -> str:
        """The workloads' etcd, as a pod reaches it."""
        return f"{NODE_IP}:{POD_ETCD_PORT}"

    @property
    def kubelet_log(self) -> Path:
        return self.log_dir / "kubelet.log"

    def env(self) -> dict[str, str]:
        """The environment of the tools: our kubeconfig, and the provisioned kubectl and
        helm (``CNINFRA_KUBECTL``, ``CNINFRA_HELM`` or the cache's; the machine may have
        others) and this virtualenv's ``sidecar`` first on PATH."""
        tools = [_binary("kubectl").parent,
                 provisioned("helm", "CNINFRA_HELM", "scripts/provision/helm.sh").parent]
        path = os.pathsep.join([*dict.fromkeys(str(t) for t in tools),
                                str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        helm_home = RUN_DIR / "helm"
        return {**os.environ, "PATH": path, "KUBECONFIG": str(self.kubeconfig),
                "HELM_CACHE_HOME": str(helm_home / "cache"),
                "HELM_CONFIG_HOME": str(helm_home / "config"),
                "HELM_DATA_HOME": str(helm_home / "data")}

    def command(self, *cmd: str) -> list[str]:
        """``cmd`` as run in the cluster's network namespace."""
        return ["nsenter", f"--net={NETNS_PATH}", "--", *cmd]

    def run(self, *cmd: str, check: bool = True, timeout: float = 120.0,
            input: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run a tool (``kubectl``, ``helm``, ``curl``, ...) in the namespace; with
        ``check`` a failure raises with its output."""
        done = subprocess.run(self.command(*cmd), capture_output=True, text=True, env=self.env(),
                              input=input, timeout=timeout, check=False, cwd=cwd,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n"
                               f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def popen(self, *cmd: str, log: Path) -> subprocess.Popen[bytes]:
        """Start a tool in the background (``kubectl port-forward``), output to ``log``."""
        with open(log, "ab") as out:
            return subprocess.Popen(self.command(*cmd), stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self.env())

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.run("kubectl", *args, "-o", "json").stdout)

    def in_netns(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on a thread inside the namespace (sockets it opens are there)."""
        if self._netns_thread is None:
            self._netns_thread = ThreadPoolExecutor(1, "cninfra-kube-netns", _enter_netns)
        return self._netns_thread.submit(fn, *args).result()

    def request(self, method: str, path: str, body: Any = None, *, timeout: float = 10.0,
                content_type: str = "application/json") -> tuple[int, Any]:
        """One API call as the admin; ``(status, decoded JSON or text)``. A PATCH names
        its kind in ``content_type`` (``application/merge-patch+json``)."""
        return self.in_netns(self._request, method, path, body, timeout, content_type)

    def ctr(self, *args: str, check: bool = True, timeout: float = 300.0) -> str:
        """containerd's ``ctr`` in the kubelet's namespace (k8s.io)."""
        done = subprocess.run(["ctr", "--address", str(self.socket), "-n", "k8s.io", *args],
                              capture_output=True, text=True, timeout=timeout, check=False,
                              stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(p.log_tail(lines) for p in self._procs.values())

    # -- lifecycle -----------------------------------------------------------------

    def ports(self) -> dict[str, int]:
        # Fixed, and only inside the namespace: no other process can take them.
        return {"kube-apiserver": API_PORT, "pod etcd": POD_ETCD_PORT}

    def _repick(self) -> None:
        pass

    def _start_once(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        self._acquire_lock()
        try:
            self._clean_leftovers()
            self._machine = _machine.MachineState.load_or_record(STATE_FILE, FIXED_PATHS)
            RUN_DIR.mkdir(parents=True)
            self.log_dir.mkdir(parents=True, exist_ok=True)
            for old in self.log_dir.glob("*.log"):
                old.unlink()
            self._make_netns()
            self._make_pki()
            self._write_configs()
            self._start_control_plane(deadline)
            self._start_node(deadline)
            self._running = True
        except BaseException:
            self._teardown()
            raise

    def stop(self) -> None:
        self._teardown()

    def kill(self) -> None:
        self._teardown()

    def close(self) -> None:
        self._teardown()

    # -- start ---------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        if self._lock is None:
            self._lock = _machine.acquire_lock(LOCK_FILE, self.lock_timeout,
                                               "only one cluster runs per machine")

    def _make_netns(self) -> None:
        subprocess.run(["ip", "netns", "add", NETNS], check=True, capture_output=True)
        for cmd in (
            "ip link set lo up",
            "ip link add cninfra-node type bridge",
            f"ip addr add {NODE_IP}/24 dev cninfra-node",
            "ip link set cninfra-node up",
            # The node's own processes (the API server calling a webhook Service) reach
            # Service IPs as pods do, through kube-proxy's rules: they need a route to
            # them, which a real node has by its default route.
            f"ip route add {SERVICE_CIDR} dev cninfra-node",
        ):
            done = subprocess.run(self.command(*cmd.split()), capture_output=True, text=True,
                                  check=False)
            if done.returncode != 0:
                raise RuntimeError(f"network namespace {NETNS}: {cmd} failed: {done.stderr}")

    def _make_pki(self) -> None:
        self._ssl = None  # a new CA
        make_pki(self.pki, self.admin_token,
                 [NODE_IP, API_SERVICE_IP, "127.0.0.1"])

    def _write_configs(self) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "cninfra", "cluster": {
                "server": self.api_url,
                "certificate-authority-data": base64.b64encode(
                    (self.pki / "ca.crt").read_bytes()).decode()}}],
            "users": [{"name": "admin", "user": {"token": self.admin_token}}],
            "contexts": [{"name": "cninfra", "context": {"cluster": "cninfra", "user": "admin"}}],
            "current-context": "cninfra",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)
        cni = RUN_DIR / "cni" / "net.d"
        cni.mkdir(parents=True)
        (cni / "10-cninfra.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": "cninfra",
            "plugins": [{
                "type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
                "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                         "routes": [{"dst": "0.0.0.0/0"}],
                         "dataDir": str(RUN_DIR / "cni" / "ipam")},
            }],
        }))
        (RUN_DIR / "containerd.toml").write_text(CONTAINERD_CONFIG.format(
            root=self.containerd_root, state=RUN_DIR / "containerd", socket=self.socket,
            pause=self.images["pause"].ref, cni_conf=cni, runc_root=RUN_DIR / "runc"))
        (RUN_DIR / "kubelet.yaml").write_text(KUBELET_CONFIG.format(
            socket=self.socket, ca=self.pki / "ca.crt", pod_logs=RUN_DIR / "pod-logs",
            plugins=RUN_DIR / "volume-plugins", dns=NODE_IP, domain=CLUSTER_DOMAIN))
        (RUN_DIR / "kube-proxy.yaml").write_text(KUBE_PROXY_CONFIG.format(
            kubeconfig=self.kubeconfig, node=NODE_NAME, pod_cidr=POD_CIDR,
            healthz=KUBE_PROXY_HEALTHZ))
        token = RUN_DIR / "dns.token"
        token.write_text(self.admin_token)
        token.chmod(0o600)

    def _process(self, name: str, cmd: Sequence[str]) -> ServerProcess:
        proc = ServerProcess(name, self.log_dir / f"{name}.log")
        self._procs[name] = proc
        proc.start(self.command(*cmd), RUN_DIR)
        return proc

    def _start_control_plane(self, deadline: float) -> None:
        pki = self.pki
        etcd = self._process("etcd", self._etcd_cmd("etcd", "127.0.0.1", 2379, 2380))
        pod_etcd = self._process("pod-etcd", self._etcd_cmd("pod-etcd", NODE_IP, POD_ETCD_PORT,
                                                             POD_ETCD_PORT + 1))
        apiserver = self._process("kube-apiserver", [
            str(_binary("kube-apiserver")),
            "--etcd-servers=http://127.0.0.1:2379",
            f"--advertise-address={NODE_IP}",
            f"--secure-port={API_PORT}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            # By its address: a name lookup would go to the machine's DNS, outside.
            "--kubelet-preferred-address-types=InternalIP",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=0",
        ])
        wait_ready("etcd healthy", lambda: self.in_netns(_http_ok, "http://127.0.0.1:2379/health"),
                   self.startup_timeout, etcd, deadline=deadline)
        wait_ready("kube-apiserver ready", self._readyz, self.startup_timeout, etcd, apiserver,
                   deadline=deadline, interval=0.2)
        wait_ready("the pods' etcd healthy",
                   lambda: self.in_netns(_http_ok, f"http://{NODE_IP}:{POD_ETCD_PORT}/health"),
                   self.startup_timeout, pod_etcd, deadline=deadline)
        # With the admin token, as everything here: this is a test cluster.
        self._process("kube-controller-manager", [
            str(_binary("kube-controller-manager")),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=false",
            "--profiling=false",
            "--v=0",
        ])
        self._process("kube-scheduler", [
            str(_binary("kube-scheduler")),
            f"--kubeconfig={self.kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            "--profiling=false",
            "--v=0",
        ])

    def _start_node(self, deadline: float) -> None:
        containerd = self._process("containerd", ["containerd", "--config",
                                                  str(RUN_DIR / "containerd.toml")])
        wait_ready("containerd serving", self._containerd_up, self.startup_timeout, containerd,
                   deadline=deadline)
        if self.ctr("containers", "ls", "-q").split():
            # A run that died left containers: remove them, and restart containerd so
            # that its CRI plugin forgets them too.
            self._purge_containers()
            containerd.stop()
            containerd.start(self.command("containerd", "--config",
                                          str(RUN_DIR / "containerd.toml")), RUN_DIR)
            wait_ready("containerd serving", self._containerd_up, self.startup_timeout,
                       containerd, deadline=deadline)
        self._import_images()
        kubelet = self._process("kubelet", [
            str(_binary("kubelet")),
            f"--config={RUN_DIR / 'kubelet.yaml'}",
            f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={RUN_DIR / 'kubelet'}",
            f"--cert-dir={RUN_DIR / 'kubelet-pki'}",
            f"--node-ip={NODE_IP}",
            f"--hostname-override={NODE_NAME}",
            "--v=2",
        ])
        procs = [self._procs[n] for n in ("etcd", "kube-apiserver", "containerd")] + [kubelet]
        wait_ready("node Ready", self._node_ready, self.startup_timeout, *procs,
                   deadline=deadline, interval=0.2)
        # Services: kube-proxy (after the node is registered: it reads its Node) and DNS.
        proxy = self._process("kube-proxy", [
            str(_binary("kube-proxy")), f"--config={RUN_DIR / 'kube-proxy.yaml'}", "--v=0"])
        dns = self._process("cluster-dns", [
            sys.executable, str(Path(__file__).with_name("_kubedns.py")),
            f"--listen={NODE_IP}", f"--api={self.api_url}", f"--ca={self.pki / 'ca.crt'}",
            f"--token-file={RUN_DIR / 'dns.token'}", f"--domain={CLUSTER_DOMAIN}"])
        wait_ready("kube-proxy's rules in place",
                   lambda: self.in_netns(_http_ok, f"http://{KUBE_PROXY_HEALTHZ}/healthz"),
                   self.startup_timeout, proxy, deadline=deadline, interval=0.2)
        wait_ready("the cluster DNS answering", self._dns_answers, self.startup_timeout, dns,
                   deadline=deadline, interval=0.2)
        # The kubelet set its kernel tunables at start; the machine gets its own back.
        assert self._machine is not None
        self._machine.restore_sysctls()

    def _import_images(self) -> None:
        stamp = self.containerd_root / "cninfra-imported.json"
        imported: dict[str, str] = json.loads(stamp.read_text()) if stamp.exists() else {}
        present = set(self.ctr("images", "ls", "-q").split())
        for image in self.images.values():
            if imported.get(image.ref) == image.id and image.ref in present:
                continue
            self.ctr("images", "import", str(image.archive))
            imported[image.ref] = image.id
        # Sidecar images of other builds: imported again from their archive if needed.
        wanted = {i.ref for i in self.images.values()}
        old = [r for r in present if r.startswith("localhost/cninfra-sidecar:") and r not in wanted]
        if old:
            self.ctr("images", "rm", *old, check=False)
            imported = {r: i for r, i in imported.items() if r not in old}
        stamp.write_text(json.dumps(imported))

    # -- stop ----------------------------------------------------------------------

    def _purge_containers(self) -> None:
        """Kill and delete every container (the pods' and their sandboxes)."""
        for task in self.ctr("tasks", "ls", "-q", check=False).split():
            self.ctr("tasks", "kill", "--signal", "SIGKILL", task, check=False)
        for task in self.ctr("tasks", "ls", "-q", check=False).split():
            self.ctr("tasks", "delete", "--force", task, check=False)
        ids = self.ctr("containers", "ls", "-q", check=False).split()
        if ids:
            self.ctr("containers", "delete", *ids, check=False)

    def _teardown(self) -> None:
        """Stop everything and put the machine back; safe to call at any point."""
        self._running = False
        kubelet = self._procs.get("kubelet")
        if kubelet is not None:
            kubelet.stop(timeout=10)
        containerd = self._procs.get("containerd")
        if containerd is not None and containerd.running:
            self._purge_containers()
        for name in ("cluster-dns", "kube-proxy", "containerd", "kube-scheduler",
                     "kube-controller-manager", "kube-apiserver", "pod-etcd", "etcd"):
            proc = self._procs.pop(name, None)
            if proc is not None:
                proc.stop(timeout=10)
        self._procs.clear()
        if self._netns_thread is not None:
            self._netns_thread.shutdown(wait=True)
            self._netns_thread = None
        if self._lock is not None:
            self._clean_leftovers()
            self._lock.close()  # releases the flock
            self._lock = None

    def _clean_leftovers(self) -> None:
        """Everything a cluster (this one, or one of a run that died) may have left:
        processes, mounts, cgroups, the namespace, sysctls and fixed paths."""
        netns_inode = NETNS_PATH.stat().st_ino if NETNS_PATH.exists() else None

        def belongs(pid: int) -> bool:
            if netns_inode is not None and Path(f"/proc/{pid}/ns/net").stat().st_ino == netns_inode:
                return True
            if any(p == f"/{POD_CGROUP}" or p.startswith(f"/{POD_CGROUP}/")
                   for p in _machine.cgroup_paths(pid)):
                return True
            line = _machine.cmdline(pid)
            return str(RUN_DIR) in line or str(self.containerd_root) in line

        _machine.kill_processes(belongs)
        _machine.unmount_below(RUN_DIR)
        _machine.unmount_below(self.containerd_root)
        for netns in Path("/run/netns").glob("cni-*"):
            _machine.unmount_below(netns)
            netns.unlink(missing_ok=True)
        if NETNS_PATH.exists():
            subprocess.run(["ip", "netns", "delete", NETNS], check=False, capture_output=True)
        _machine.remove_cgroups(POD_CGROUP)
        subprocess.run(["rm", "-rf", "--one-file-system", str(RUN_DIR)], check=False)
        state = self._machine
        if state is None and STATE_FILE.exists():
            state = _machine.MachineState.load_or_record(STATE_FILE, ())
        if state is not None:
            state.restore()
        self._machine = None

    # -- readiness ------------------------------------------------------------------

    def _etcd_cmd(self, name: str, host: str, port: int, peer_port: int) -> list[str]:
        client, peer = f"http://{host}:{port}", f"http://127.0.0.1:{peer_port}"
        return [etcd_binary(), f"--name={name}", f"--data-dir={RUN_DIR / name}",
                f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster={name}={peer}", "--unsafe-no-fsync", "--log-level=warn"]

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        return self._ssl

    def _request(self, method: str, path: str, body: Any, timeout: float,
                 content_type: str) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.api_url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.admin_token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self._ssl_context(), timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def _containerd_up(self) -> bool | str:
        done = subprocess.run(["ctr", "--address", str(self.socket), "version"],
                              capture_output=True, text=True, timeout=10, check=False)
        return done.returncode == 0 or done.stderr.strip()

    def _readyz(self) -> bool | str:
        status, out = self.request("GET", "/readyz", timeout=2)
        return status == 200 or f"{status} {out}"

    def _dns_answers(self) -> bool | str:
        name = f"kubernetes.default.svc.{CLUSTER_DOMAIN}"
        found = self.in_netns(resolve, NODE_IP, name)
        return found == [API_SERVICE_IP] or f"{name}: {found}"

    def _node_ready(self) -> bool | str:
        status, node = self.request("GET", f"/api/v1/nodes/{NODE_NAME}", timeout=2)
        if status != 200:
            return f"node {NODE_NAME}: {status}"
        conditions = {c["type"]: c for c in node.get("status", {}).get("conditions", [])}
        ready = conditions.get("Ready", {})
        taints = [t["key"] for t in node.get("spec", {}).get("taints", [])]
        if ready.get("status") == "True" and not taints:
            return True
        return f"Ready={ready.get('status')} ({ready.get('message', '')}); taints {taints}"


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as reply:
        return bool(reply.status == 200)


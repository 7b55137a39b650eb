"""The files of the test cluster's node: its PKI, containerd's, the kubelet's and
kube-proxy's config."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .kube import _openssl

__all__ = ["CONTAINERD_CONFIG", "KUBELET_CONFIG", "KUBE_PROXY_CONFIG", "ImageArchive",
           "make_pki", "provisioned_images"]

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ImageArchive:
    """An image scripts/provision/images.sh built: its reference, ID and docker-archive."""

    ref: str
    id: str
    archive: Path


def provisioned_images() -> dict[str, ImageArchive]:
    """Run scripts/provision/images.sh (a no-op when nothing changed; a rebuild of the
    layers after a change of the sidecar's code) and return its images by role:
    ``sidecar``, ``workload`` (the chart's demo image stand-in) and ``pause``."""
    script = REPO / "scripts" / "provision" / "images.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return {role: ImageArchive(v["ref"], v["id"], Path(v["archive"])) for role, v in found.items()}


def make_pki(d: Path, admin_token: str, ips: Sequence[str]) -> None:
    """A CA; the API server's serving certificate for ``ips`` and the kubernetes
    Service names; its client certificate at the kubelet; the ServiceAccount key
    pair; the admin's static token. EC keys: quick to make."""
    d.mkdir(parents=True)
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-days", "30", "-subj", "/CN=cninfra-kube-ca",
             "-keyout", "ca.key", "-out", "ca.crt",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    sans = ",".join([*(f"IP:{ip}" for ip in ips), "DNS:localhost", "DNS:kubernetes",
                     "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                     "DNS:kubernetes.default.svc.cluster.local"])
    certs = {
        "apiserver": ("/CN=kube-apiserver", "serverAuth", sans),
        # The API server's client certificate at the kubelet (exec, logs, port-forward).
        "kubelet-client": ("/O=system:masters/CN=kube-apiserver-kubelet-client",
                           "clientAuth", ""),
    }
    for name, (subject, usage, alt) in certs.items():
        ext = ("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
               f"extendedKeyUsage={usage}\n" + (f"subjectAltName={alt}\n" if alt else ""))
        (d / f"{name}.ext").write_text(ext)
        _openssl("req", *ec, "-subj", subject, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "30", "-extfile", f"{name}.ext",
                 "-out", f"{name}.crt", cwd=d)
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", "sa.key", cwd=d)
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
    (d / "tokens.csv").write_text(f'{admin_token},admin,admin,"system:masters"\n')


CONTAINERD_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
# root lacks CAP_SYS_RESOURCE here: no negative OOM scores.
oom_score = 0
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{runc_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
"""

KUBELET_CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine has cgroup v1 only (hybrid); the kubelet only warns with this.
failCgroupV1: false
cgroupDriver: cgroupfs
# root lacks CAP_SYS_RESOURCE: no negative OOM score for the kubelet.
oomScoreAdj: 0
containerRuntimeEndpoint: unix://{socket}
address: 0.0.0.0
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: {ca}
authorization:
  mode: AlwaysAllow
podLogsDir: {pod_logs}
volumePluginDir: {plugins}
failSwapOn: false
# The images are imported, never pulled: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
maxPods: 30
# The cluster DNS (tests/servers/_kubedns.py); the machine's own resolvers are
# outside the namespace, so no pod gets them.
clusterDNS: [{dns}]
clusterDomain: {domain}
resolvConf: ""
"""

KUBE_PROXY_CONFIG = """\
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {kubeconfig}
hostnameOverride: {node}
mode: iptables
clusterCIDR: {pod_cidr}
healthzBindAddress: {healthz}
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [primary]
# root lacks CAP_SYS_RESOURCE: no negative OOM score.
oomScoreAdj: 0
# 0: leave the kernel's conntrack table size and timeouts alone. The size is
# machine-wide; kube-proxy would raise it for the whole machine.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
"""

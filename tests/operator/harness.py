"""The operator as a child process on loopback, and the chart's webhook configuration for it.

kopf owns the operator's process (its loop, its signals), so tests run the
real ``sidecar operator`` command, logged in with a kubeconfig, serving the
webhook on a free loopback port with its own TLS; the kube-apiserver calls
it as it would call the chart's Service.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.inject.charts import operator_chart, rendered_spec
from tests.packaging.kubeapply import apply
from tests.packaging.render import find, helm_template
from tests.servers._util import free_ports, tail, wait_until
from tests.servers.kube import KubeApiServer, _openssl

__all__ = ["OperatorProcess", "chart_copy", "install_webhook", "operator_chart_docs",
           "serving_cert"]

RELEASE = "cninfra-operator"
NAMESPACE = "cninfra"


def serving_cert(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA and a serving certificate it signs for ``host``: (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=webhook-test-ca", "-keyout", "ca.key", "-out", "ca.crt",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    (directory / "ext").write_text(
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage=serverAuth\nsubjectAltName=IP:{host}\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=webhook", "-keyout",
             "tls.key", "-out", "tls.csr", cwd=directory)
    _openssl("x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "tls.crt",
             cwd=directory)
    return directory / "ca.crt", directory / "tls.crt", directory / "tls.key"


def webhook_configuration(url: str, *, failure_policy: str = "Ignore",
                          ca_bundle: bytes | None = None,
                          values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The chart's MutatingWebhookConfiguration for a webhook at ``url``, with
    ``ca_bundle`` set as cert-manager's CA injector would."""
    docs = helm_template({"webhook": {"url": url, "failurePolicy": failure_policy},
                          **(values or {})}, chart=chart_copy(), release=RELEASE,
                         namespace=NAMESPACE,
                         extra_args=["--show-only", "templates/webhook.yaml"])
    config = find(docs, "MutatingWebhookConfiguration")
    if ca_bundle is not None:
        for webhook in config["webhooks"]:
            webhook["clientConfig"]["caBundle"] = base64.b64encode(ca_bundle).decode()
    return config


@functools.cache
def chart_copy() -> Path:
    """One copy of the operator chart (with its dependency) for the session."""
    return operator_chart(Path(tempfile.mkdtemp(prefix="cninfra-operator-")))


def operator_chart_docs(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Everything the operator chart renders (release cninfra-operator in cninfra)."""
    return helm_template(values, chart=chart_copy(), release=RELEASE, namespace=NAMESPACE)


def install_webhook(api: KubeApiServer, url: str, ca_bundle: bytes, *,
                    failure_policy: str = "Ignore") -> dict[str, Any]:
    config = webhook_configuration(url, failure_policy=failure_policy, ca_bundle=ca_bundle)
    return apply(api, [config], namespace=NAMESPACE)[0]


class OperatorProcess:
    """``sidecar operator`` with an operator.conf of the test's, logging to a file."""

    def __init__(self, api: KubeApiServer, workdir: Path, *,
                 config: dict[str, Any] | None = None, token: str | None = None,
                 spec_values: dict[str, Any] | None = None, identity: str = "") -> None:
        self.api = api
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.webhook_port, self.http_port = free_ports(2)
        self.ca, self.cert, self.key = serving_cert(workdir / "tls")
        _, spec_text = rendered_spec(spec_values or {})
        (workdir / "spec.yaml").write_text(spec_text)
        conf: dict[str, Any] = {
            "spec": str(workdir / "spec.yaml"), "namespace": NAMESPACE,
            "http-port": self.http_port,
            "webhook": {"address": "127.0.0.1", "port": self.webhook_port},
            "tls": {"mode": "files", "cert-file": str(self.cert), "key-file": str(self.key),
                    "ca-file": str(self.ca)},
            "peering": {"standalone": True},
        }
        for key, value in (config or {}).items():
            conf[key] = {**conf[key], **value} if isinstance(value, dict) else value
        if conf["tls"].get("mode") == "self-signed":
            conf["tls"] = {k: v for k, v in conf["tls"].items() if not k.endswith("-file")}
        self.conf = conf
        (workdir / "operator.conf").write_text(json.dumps(conf, indent=2))
        self.kubeconfig = api.write_kubeconfig(workdir / "kubeconfig", token)
        #: Its name among peers (POD_ID, as the chart sets it).
        self.identity = identity or workdir.name
        self.log_path = workdir / "operator.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.webhook_port}"

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1",
               "POD_ID": self.identity}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar", "operator", "--config",
                 str(self.workdir / "operator.conf"), "--log-level", "debug"],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        wait_until(self._serving, timeout, f"the operator serving (log: {self.log_path})")
        return self

    def _serving(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the operator exited with {self.proc.returncode}\n"
                                 + tail(self.log_path, 60))
        status, _ = self.get("/healthz")
        if status != 200:
            return False
        # kopf starts the webhook once it has scanned the API; a handshake proves it.
        return self.webhook_answers()

    @property
    def self_signed(self) -> bool:
        return bool(self.conf["tls"].get("mode") == "self-signed")

    def webhook_answers(self) -> bool:
        """A TLS handshake with the webhook succeeds (with the test's CA when it made the
        certificate; a self-signed operator's is checked by the apiserver's calls)."""
        return self.served_certificate() is not None

    def served_certificate(self) -> bytes | None:
        """The certificate (DER) a TLS handshake with the webhook gets now."""
        if self.self_signed:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with socket.create_connection(("127.0.0.1", self.webhook_port), timeout=2) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return tls.getpeercert(binary_form=True)
        except OSError:
            return None

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}",
                                        timeout=5) as reply:
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample of /metrics, or None when it is not there."""
        _, text = self.get("/metrics")
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, rest = series.partition("{")
            found = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
            if metric == name and found == want:
                return float(value)
        return None

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as the kubelet stops a pod; the exit status."""
        if self.proc is None:
            return 0
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError("the operator did not stop on SIGTERM\n"
                                     + tail(self.log_path, 60)) from None
        return proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def output(self) -> str:
        return tail(self.log_path, 80)

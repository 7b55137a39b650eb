"""Where the API server is and how to log in: the pod's ServiceAccount, or a kubeconfig.

In a pod nothing heavy is imported: the token, CA and namespace are files.
A kubeconfig can use any of its many forms (tokens, client certificates,
exec plugins), so it is read by the ``kubernetes`` client's loader.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import K8sConfig, in_cluster
from .errors import CredentialsError


class TokenFile:
    """A bearer token file that the kubelet rotates: re-read whenever it changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._token = ""

    def read(self) -> str:
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                self._token = self.path.read_text(encoding="utf-8").strip()
                self._stamp = stamp
        except OSError as exc:
            if not self._token:
                raise CredentialsError(f"cannot read the token {self.path}: {exc}") from None
            # Mid-rotation: the previous token is still good for a while.
        return self._token


@dataclass(frozen=True)
class Credentials:
    """How to reach and authenticate to the API server."""

    server: str
    #: Where these came from, for messages: ``in-cluster ServiceAccount`` or the kubeconfig.
    source: str
    ca_file: str | None = None
    ca_data: str | None = None
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    #: A token, or a callable returning the current one (rotated files, exec plugins).
    token: str | Callable[[], str | None] | None = None
    #: The namespace the credentials point at (the ServiceAccount's, the context's).
    namespace: str | None = None
    #: Extra request headers (the kubeconfig's impersonation, for example).
    headers: Mapping[str, str] = field(default_factory=dict)

    def bearer_token(self) -> str | None:
        if callable(self.token):
            return self.token()
        return self.token

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https://"):
            return False
        if self.insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def in_cluster_credentials(service_account_dir: str,
                           env: Mapping[str, str] | None = None) -> Credentials:
    """The pod's mounted ServiceAccount and ``KUBERNETES_SERVICE_HOST``/``_PORT``."""
    environ = os.environ if env is None else env
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise CredentialsError("KUBERNETES_SERVICE_HOST is not set: not in a cluster")
    if ":" in host:  # an IPv6 service address
        host = f"[{host}]"
    directory = Path(service_account_dir)
    token = TokenFile(directory / "token")
    token.read()  # fail now, with the path, rather than at the first request
    ca = directory / "ca.crt"
    namespace_file = directory / "namespace"
    namespace = None
    if namespace_file.is_file():
        namespace = namespace_file.read_text(encoding="utf-8").strip() or None
    return Credentials(
        server=f"https://{host}:{port}",
        source=f"in-cluster ServiceAccount ({directory})",
        ca_file=str(ca) if ca.is_file() else None,
        token=token.read,
        namespace=namespace,
    )


def kubeconfig_credentials(path: str) -> Credentials:
    """The current context of a kubeconfig file (blocking: run it in a thread)."""
    if not Path(path).is_file():
        raise CredentialsError(f"kubeconfig {path}: no such file")
    # Heavy, and only out of the cluster: the client's loader knows every kubeconfig form.
    try:
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise CredentialsError(
            f"kubeconfig {path}: reading a kubeconfig needs the Kubernetes client: "
            "pip install 'cninfra-sidecar[kubeconfig]' (in a pod the ServiceAccount "
            "needs nothing more)") from None

    configuration = client.Configuration()
    try:
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=configuration, persist_config=False)
        _, context = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=path)
    except (ConfigException, OSError, ValueError) as exc:
        raise CredentialsError(f"kubeconfig {path}: {exc}") from None

    def token() -> str | None:
        # auth_settings() refreshes an exec plugin's or an auth provider's token when
        # it expires; the name of its entry has changed between client versions.
        settings: Mapping[str, Any] = configuration.auth_settings()
        for setting in settings.values():
            value = setting.get("value")
            if str(setting.get("key", "")).lower() == "authorization" and value:
                return str(value).removeprefix("Bearer ").strip()
        return None

    namespace = (context or {}).get("context", {}).get("namespace")
    return Credentials(
        server=str(configuration.host).rstrip("/"),
        source=f"kubeconfig {path}",
        ca_file=configuration.ssl_ca_cert or None,
        insecure=not configuration.verify_ssl,
        cert_file=configuration.cert_file or None,
        key_file=configuration.key_file or None,
        token=token,
        namespace=namespace or None,
    )


def find_credentials(config: K8sConfig, env: Mapping[str, str] | None = None) -> Credentials:
    """k8s.conf's kubeconfig, else the in-cluster ServiceAccount, else ``$KUBECONFIG``."""
    environ = os.environ if env is None else env
    if config.kubeconfig:
        return kubeconfig_credentials(config.kubeconfig)
    if in_cluster(environ, config.service_account_dir):
        return in_cluster_credentials(config.service_account_dir, environ)
    kubeconfig = environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if kubeconfig:
        return kubeconfig_credentials(kubeconfig)
    raise CredentialsError(
        "no Kubernetes credentials: not in a cluster (KUBERNETES_SERVICE_HOST and "
        f"{config.service_account_dir}/token), and neither k8s.conf's kubeconfig "
        "nor $KUBECONFIG names a kubeconfig")

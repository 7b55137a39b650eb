"""``operator.conf``: where the operator finds what it injects, serves the webhook, and keeps TLS.

Every key has a default that suits the chart's Deployment; the chart renders
the file from its values. Out of a cluster (``KUBECONFIG``), ``namespace``
and the webhook's ``hosts`` name where it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from sidecar.config import DURATION


@dataclass(frozen=True)
class WebhookConfig:
    #: Where the admission webhook listens (HTTPS).
    address: str = "0.0.0.0"
    port: int = 9443
    #: The MutatingWebhookConfiguration whose ``caBundle`` the operator keeps current
    #: (self-signed TLS); empty: leave it alone.
    configuration: str = ""
    #: Namespaces never injected (besides the operator's own), as the webhook
    #: configuration's namespaceSelector leaves them out.
    excluded_namespaces: list[str] = field(default_factory=lambda: ["kube-system"])

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port: {self.port} is not a TCP port")


@dataclass(frozen=True)
class TlsConfig:
    #: ``self-signed``: a CA and a serving certificate made and rotated by the operator,
    #: kept in ``secret``; ``files``: read from ``cert-file``/``key-file``/``ca-file``
    #: (cert-manager's Secret mounted), re-read when they change.
    mode: Literal["self-signed", "files"] = "self-signed"
    #: The Secret (in the operator's namespace) with ``ca.crt``, ``tls.crt``, ``tls.key``.
    secret: str = "cninfra-operator-webhook-tls"
    #: Names the serving certificate is for (the webhook Service's DNS names, or an address).
    hosts: list[str] = field(default_factory=list)
    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    #: How often files are checked for a renewal (``files``), and how long a
    #: serving certificate is valid (``self-signed``; renewed at two thirds of it).
    check_interval: Annotated[float, DURATION] = 60.0
    validity: Annotated[float, DURATION] = 90 * 24 * 3600.0
    ca_validity: Annotated[float, DURATION] = 3 * 365 * 24 * 3600.0

    def __post_init__(self) -> None:
        if self.mode == "files" and not (self.cert_file and self.key_file):
            raise ValueError("mode files needs cert-file and key-file")
        if self.validity <= 0 or self.ca_validity < self.validity:
            raise ValueError("validity must be positive and no longer than ca-validity")


@dataclass(frozen=True)
class PeeringConfig:
    #: The ClusterKopfPeering object the replicas meet at; one of them is active.
    name: str = "cninfra-operator"
    #: Without peering: one replica only (or out of a cluster, for a try).
    standalone: bool = False


@dataclass(frozen=True)
class OperatorConfig:
    #: The injection spec (spec.yaml); empty: the packaged default.
    spec: str = ""
    #: The operator's namespace (the TLS Secret, the source ConfigMaps); default
    #: ``$POD_NAMESPACE``, else the credentials'.
    namespace: str = ""
    #: A kubeconfig; default: in a pod the ServiceAccount, else ``$KUBECONFIG``.
    kubeconfig: str = ""
    #: Where /fleet, /metrics and /healthz are served.
    http_port: int = 9191
    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    peering: PeeringConfig = field(default_factory=PeeringConfig)
    #: Deadline of each API request the operator makes itself.
    request_timeout: Annotated[float, DURATION] = 10.0

    def __post_init__(self) -> None:
        # Here rather than in TlsConfig: the default TlsConfig (no tls key) has no hosts
        # either, and the message must name the key whatever the file says.
        if self.tls.mode == "self-signed" and not self.tls.hosts:
            raise ValueError("tls.hosts: mode self-signed needs the names the API server "
                             "calls the webhook by (its Service's DNS names, or an address)")

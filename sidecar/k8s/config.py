"""``k8s.conf``: how the sidecar finds its Pod and the API server, and how often it writes.

In a pod every key can stay at its default: the Pod's name and namespace come
from the Downward API (``POD_NAME``, ``POD_NAMESPACE``) and the credentials
from the mounted ServiceAccount token. Out of the cluster, ``kubeconfig``
(or ``$KUBECONFIG``) names the credentials and ``pod-name`` the Pod.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from sidecar.config import DURATION

#: Where the kubelet mounts a pod's ServiceAccount token, CA and namespace.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
DEFAULT_CONFIGMAP_KEY = "supervisor.conf"
#: Names the programs ConfigMap, winning over k8s.conf's configmap.name (the operator
#: sets it for a pod whose annotation cninfra.io/programs-configmap names another).
PROGRAMS_CONFIGMAP_ENV = "PROGRAMS_CONFIGMAP"


@dataclass(frozen=True)
class ConfigMapConfig:
    #: The ConfigMap, in the Pod's namespace, that holds the supervisor's
    #: programs; empty: no ConfigMap is watched.
    name: str = ""
    #: Its key whose value is the text of ``supervisor.conf``.
    key: str = DEFAULT_CONFIGMAP_KEY

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError("key must not be empty")


@dataclass(frozen=True)
class PodStatusConfig:
    #: Write the annotations ``cninfra.io/status`` and ``cninfra.io/status-detail``.
    annotations: bool = True
    #: Write the condition ``cninfra.io/ready`` (the one a readiness gate waits for).
    condition: bool = True
    #: Least time between two PATCHes of the Pod: changes within it are
    #: coalesced into one write of the latest state.
    min_interval: Annotated[float, DURATION] = 1.0
    #: Longest wait between retries of a failed write.
    max_backoff: Annotated[float, DURATION] = 10.0

    def __post_init__(self) -> None:
        if self.min_interval < 0:
            raise ValueError("min-interval must not be negative")
        if self.max_backoff <= 0:
            raise ValueError("max-backoff must be greater than zero")

    @property
    def enabled(self) -> bool:
        return self.annotations or self.condition


@dataclass(frozen=True)
class EventsConfig:
    #: Post Events on the Pod (state changes, program crashes, rejected ConfigMaps).
    enabled: bool = True
    #: Sustained rate: at most this many Events per minute...
    per_minute: int = 12
    #: ...after a burst of at most this many; the rest are dropped (and counted).
    burst: int = 5

    def __post_init__(self) -> None:
        if self.per_minute < 1:
            raise ValueError("per-minute must be at least 1")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")


@dataclass(frozen=True)
class K8sConfig:
    #: ``false`` turns the plugin off, also in a cluster.
    enabled: bool = True
    #: The Pod's namespace; default ``$POD_NAMESPACE``, else the ServiceAccount's
    #: namespace file, else the kubeconfig context's namespace.
    namespace: str = ""
    #: The Pod's name; default ``$POD_NAME``, else (in a cluster) the host name.
    pod_name: str = ""
    #: A kubeconfig file for use outside a cluster; default ``$KUBECONFIG`` when
    #: there is no in-cluster ServiceAccount.
    kubeconfig: str = ""
    #: The in-cluster credentials (token, ca.crt, namespace).
    service_account_dir: str = SERVICE_ACCOUNT_DIR
    #: The programs ConfigMap to watch and hot-apply (``PROGRAMS_CONFIGMAP`` wins).
    configmap: ConfigMapConfig = field(default_factory=ConfigMapConfig)
    #: What is written onto the Pod, and how often.
    status: PodStatusConfig = field(default_factory=PodStatusConfig)
    #: Events on the Pod, rate-limited.
    events: EventsConfig = field(default_factory=EventsConfig)
    #: Deadline of each API request (the ConfigMap watch excepted).
    request_timeout: Annotated[float, DURATION] = 5.0
    #: The k8s check's grace: how long its ERROR lasts before it counts for a
    #: health group that includes k8s (none does by default), so that an API
    #: server rollout does not flip the pod's readiness. statuscheck.conf's
    #: ``grace`` for k8s wins over it.
    error_grace: Annotated[float, DURATION] = 30.0

    def __post_init__(self) -> None:
        if self.request_timeout <= 0:
            raise ValueError("request-timeout must be greater than zero")
        if self.error_grace < 0:
            raise ValueError("error-grace must not be negative")


def in_cluster(env: Mapping[str, str] | None = None,
               service_account_dir: str = SERVICE_ACCOUNT_DIR) -> bool:
    """Running in a pod with API credentials: ``KUBERNETES_SERVICE_HOST`` is set
    and the ServiceAccount token is mounted."""
    environ = os.environ if env is None else env
    return bool(environ.get("KUBERNETES_SERVICE_HOST")) and (
        Path(service_account_dir) / "token").is_file()

"""k8s: the sidecar's state on its own Pod, the programs ConfigMap hot-applied, Events.

Enabled in a cluster (``KUBERNETES_SERVICE_HOST`` and a mounted ServiceAccount
token) or by ``k8s.conf``; kopf and the Kubernetes client are imported only
then. The Role it needs: get ``pods``, patch ``pods/status``, get/list/watch of
the watched ConfigMap only (``resourceNames``: the watch selects it by name),
create ``events``::

    from sidecar.k8s import K8sConfig, K8sPlugin

    plugin = K8sPlugin(K8sConfig(configmap=ConfigMapConfig(name="my-programs")),
                       statuscheck, supervisor=supervisor)
"""

from ._api import STRATEGIC_MERGE, ApiClient, pod_path
from ._credentials import Credentials, find_credentials
from .api import ProgramEventLike, ProgramSupervisor, ReloadOutcome, SupervisorLike
from .config import (
    DEFAULT_CONFIGMAP_KEY,
    SERVICE_ACCOUNT_DIR,
    ConfigMapConfig,
    EventsConfig,
    K8sConfig,
    PodStatusConfig,
    in_cluster,
)
from .configmap import ConfigMapApplier, describe_outcome
from .errors import ApiError, ApiUnavailableError, CredentialsError, K8sError
from .events import EventRecorder, TokenBucket
from .plugin import K8sPlugin, enabled, pod_name
from .podstatus import (
    DETAIL_ANNOTATION,
    READY_CONDITION,
    STATUS_ANNOTATION,
    PodRef,
    PodStatus,
    PodStatusWriter,
)

__all__ = [
    "DEFAULT_CONFIGMAP_KEY",
    "DETAIL_ANNOTATION",
    "READY_CONDITION",
    "SERVICE_ACCOUNT_DIR",
    "STATUS_ANNOTATION",
    "STRATEGIC_MERGE",
    "ApiClient",
    "ApiError",
    "ApiUnavailableError",
    "ConfigMapApplier",
    "ConfigMapConfig",
    "Credentials",
    "CredentialsError",
    "EventRecorder",
    "EventsConfig",
    "K8sConfig",
    "K8sError",
    "K8sPlugin",
    "PodRef",
    "PodStatus",
    "PodStatusConfig",
    "PodStatusWriter",
    "ProgramEventLike",
    "ProgramSupervisor",
    "ReloadOutcome",
    "SupervisorLike",
    "TokenBucket",
    "describe_outcome",
    "enabled",
    "find_credentials",
    "in_cluster",
    "pod_name",
    "pod_path",
]

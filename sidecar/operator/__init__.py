"""operator: ``sidecar operator``, a kopf operator beside the sidecars.

* a mutating admission webhook that injects the sidecar into pods that ask
  for it (annotation ``cninfra.io/inject: "true"`` or the namespace label),
  exactly as the chart's named templates render it (:mod:`sidecar.inject`);
* Events and a gauge for pods that went out without it.

kopf and the Kubernetes client are imported only when it runs.
"""

from .config import OperatorConfig, PeeringConfig, TlsConfig, WebhookConfig
from .webhook import Denied, Injector, Review

__all__ = [
    "Denied",
    "Injector",
    "OperatorConfig",
    "PeeringConfig",
    "Review",
    "TlsConfig",
    "WebhookConfig",
]

"""The annotations and label a pod or namespace uses to ask for the sidecar (the contract).

    metadata:
      annotations:
        cninfra.io/inject: "true"                  # or the namespace label cninfra.io/inject=true
        cninfra.io/log-level: debug                # optional overrides, each validated
        cninfra.io/microservice-label: billing
        cninfra.io/config-configmap: my-config
        cninfra.io/programs-configmap: my-programs

``cninfra.io/inject: "false"`` on a pod opts it out, also in a namespace that opts in.
"""

from __future__ import annotations

PREFIX = "cninfra.io/"

#: Pod annotation, and namespace label, that ask for injection ("true"), or refuse it ("false").
INJECT = "cninfra.io/inject"
#: The sidecar's initial log level (INITIAL_LOGLVL), as the chart's ``sidecar.logLevel``.
LOG_LEVEL = "cninfra.io/log-level"
#: The agent label (MICROSERVICE_LABEL), as the chart's ``sidecar.microserviceLabel.value``.
MICROSERVICE_LABEL = "cninfra.io/microservice-label"
#: Another ConfigMap (in the pod's namespace) as the sidecar's config dir.
CONFIG_CONFIGMAP = "cninfra.io/config-configmap"
#: Another ConfigMap (in the pod's namespace) holding ``supervisor.conf``.
PROGRAMS_CONFIGMAP = "cninfra.io/programs-configmap"

OVERRIDES = (LOG_LEVEL, MICROSERVICE_LABEL, CONFIG_CONFIGMAP, PROGRAMS_CONFIGMAP)
#: Written by the sidecar itself (sidecar/k8s/podstatus.py), never by users.
STATUS_ANNOTATIONS = ("cninfra.io/status", "cninfra.io/status-detail")
KNOWN_ANNOTATIONS = (INJECT, *OVERRIDES, *STATUS_ANNOTATIONS)

#: The environment variable that names the watched programs ConfigMap (wins over k8s.conf).
PROGRAMS_CONFIGMAP_ENV = "PROGRAMS_CONFIGMAP"

"""``servicelabel.conf``: where the label comes from when no flag or variable sets it."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_LABELS_FILE = "/etc/podinfo/labels"
DEFAULT_LABEL_KEY = "cninfra.io/microservice-label"


@dataclass(frozen=True)
class ServiceLabelConfig:
    #: A Downward API ``labels`` file (``key="value"`` lines); ignored when absent.
    labels_file: str = DEFAULT_LABELS_FILE
    #: The pod label that holds the service label.
    label_key: str = DEFAULT_LABEL_KEY
    #: The label when neither flag, environment nor labels file give one;
    #: empty means the host name (in Kubernetes, the pod's name).
    default: str = ""

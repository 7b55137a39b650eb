"""servicelabel: the agent's microservice label and the etcd key prefixes built from it."""

from .api import (
    ALL_AGENTS_PREFIX,
    MAX_LABEL_LENGTH,
    InvalidLabelError,
    ServiceLabelReader,
    agent_prefix_of,
    validate_label,
)
from .config import ServiceLabelConfig
from .plugin import ServiceLabelPlugin, read_labels_file, resolve_label

__all__ = [
    "ALL_AGENTS_PREFIX",
    "MAX_LABEL_LENGTH",
    "InvalidLabelError",
    "ServiceLabelConfig",
    "ServiceLabelPlugin",
    "ServiceLabelReader",
    "agent_prefix_of",
    "read_labels_file",
    "resolve_label",
    "validate_label",
]

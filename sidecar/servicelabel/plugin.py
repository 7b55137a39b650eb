"""Resolves the label once: flag > MICROSERVICE_LABEL > Downward API labels file > default."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Mapping
from pathlib import Path

from .api import ALL_AGENTS_PREFIX, agent_prefix_of, validate_label
from .config import ServiceLabelConfig

log = logging.getLogger("sidecar.servicelabel")

ENV_VAR = "MICROSERVICE_LABEL"


def read_labels_file(path: Path) -> dict[str, str]:
    """Parse a Downward API labels file: one ``key="quoted value"`` per line."""
    labels: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, raw = line.partition("=")
        if not sep:
            continue
        raw = raw.strip()
        try:
            value = json.loads(raw) if raw.startswith('"') else raw
        except json.JSONDecodeError:
            value = raw.strip('"')
        labels[key.strip()] = str(value)
    return labels


def resolve_label(
    config: ServiceLabelConfig,
    flag: str | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """The label and where it came from; raises InvalidLabelError for a bad one."""
    environ = os.environ if env is None else env
    if flag is not None:
        return validate_label(flag, "--microservice-label"), "--microservice-label"
    if ENV_VAR in environ:
        return validate_label(environ[ENV_VAR], ENV_VAR), ENV_VAR
    path = Path(config.labels_file)
    try:
        labels = read_labels_file(path)
    except FileNotFoundError:
        labels = {}
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read labels file %s: %s", path, exc)
        labels = {}
    if config.label_key in labels:
        source = f"label {config.label_key!r} in {path}"
        return validate_label(labels[config.label_key], source), source
    if config.default:
        return validate_label(config.default, "servicelabel.conf default"), "default"
    return validate_label(socket.gethostname(), "the host name"), "host name"


class ServiceLabelPlugin:
    """Holds the label resolved at construction; bad labels fail before anything starts."""

    name = "servicelabel"

    def __init__(self, label: str) -> None:
        self._label = validate_label(label, "the agent builder")

    @classmethod
    def from_config(
        cls,
        config: ServiceLabelConfig | None = None,
        flag: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ServiceLabelPlugin:
        label, source = resolve_label(config or ServiceLabelConfig(), flag, env)
        log.debug("microservice label %r from %s", label, source)
        return cls(label)

    def agent_label(self) -> str:
        return self._label

    def agent_prefix(self) -> str:
        return agent_prefix_of(self._label)

    def different_agent_prefix(self, label: str) -> str:
        return agent_prefix_of(validate_label(label, "different_agent_prefix"))

    def all_agents_prefix(self) -> str:
        return ALL_AGENTS_PREFIX

    async def init(self) -> None:
        log.info("microservice label: %s", self._label)

    async def after_init(self) -> None:
        pass

    async def close(self) -> None:
        pass

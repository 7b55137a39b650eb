"""The injection spec: what the sidecar adds to a pod, as the chart's named templates render it.

The operator chart (charts/cninfra-operator) renders this document from the
cninfra-sidecar chart's named templates and values, into the ConfigMap the
operator reads; ``sidecar inject`` reads the same document (``--spec``), or
the one packaged here, which is the operator chart's default rendering
(``scripts/render-injection-spec.py`` writes it; a test keeps it current).
Nothing of the sidecar's pod spec is written in Python: the chart is the one
source of truth, and this module only checks the shape.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from sidecar.config import ConfigError, YamlError, decode, parse_yaml

from .errors import SpecError

DEFAULT_SPEC = "default-spec.yaml"
#: The key of the operator chart's injection ConfigMap that holds the spec.
CONFIGMAP_KEY = "spec.yaml"
#: ``auto``: native on Kubernetes >= 1.29, as the chart's ``cninfra-sidecar.native``.
NATIVE_SINCE = (1, 29)
_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


@dataclass(frozen=True)
class InjectionSpec:
    #: The chart's ``nativeSidecar``: auto (native on >= 1.29), true or false.
    native_sidecar: Literal["auto", "true", "false"]
    #: ``cninfra-sidecar.container``: the sidecar container.
    container: dict[str, Any]
    #: ``cninfra-sidecar.volumes``: the pod volumes the sidecar mounts.
    volumes: list[dict[str, Any]]
    #: ``cninfra-sidecar.readinessGates``.
    readiness_gates: list[dict[str, Any]] = field(default_factory=list)
    #: ``cninfra-sidecar.podLabels``.
    pod_labels: dict[str, str] = field(default_factory=dict)
    #: ``cninfra-sidecar.podAnnotations`` (the config checksum).
    pod_annotations: dict[str, str] = field(default_factory=dict)
    #: The config ConfigMap the volumes name (copied into each namespace by the operator).
    config_map: str = ""
    #: The programs ConfigMap; empty without the supervisor.
    programs_config_map: str = ""
    #: The Role the injected pods' ServiceAccounts need in their namespace (empty: none).
    role_rules: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        name = self.container.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("container: needs a name")
        names = [v.get("name") for v in self.volumes]
        if any(not isinstance(n, str) or not n for n in names) or len(set(names)) != len(names):
            raise ValueError("volumes: every volume needs a name of its own")

    @property
    def container_name(self) -> str:
        return str(self.container["name"])

    def native_on(self, kube_version: str | None) -> bool:
        """Whether the sidecar is a native one on a server of ``kube_version``
        (``v1.30.2``, ``1.28``; None: a current one)."""
        if self.native_sidecar != "auto":
            return self.native_sidecar == "true"
        if kube_version is None:
            return True
        return parse_kube_version(kube_version) >= NATIVE_SINCE

    def sidecar_container(self, native: bool) -> dict[str, Any]:
        """A copy of the container, as a native sidecar (restartPolicy Always) or a classic one."""
        # The name first, as people write it (the chart's rendering sorts the keys).
        container = {"name": self.container_name, **copy.deepcopy(self.container)}
        if native:
            container["restartPolicy"] = "Always"
        else:
            container.pop("restartPolicy", None)
        return container


def parse_kube_version(text: str) -> tuple[int, int]:
    """``v1.30.2-gke.1`` -> (1, 30); ValueError naming the expected form."""
    match = _VERSION.match(text.strip())
    if match is None:
        raise ValueError(f"Kubernetes version {text!r} is not of the form 1.29 or v1.29.3")
    return int(match.group(1)), int(match.group(2))


def parse_spec(text: str, source: str) -> InjectionSpec:
    """The spec in ``text`` (spec.yaml, or the operator's ConfigMap as kubectl prints it)."""
    try:
        data = parse_yaml(text)
    except YamlError as exc:
        raise SpecError(f"{source}: {exc}") from None
    if isinstance(data, dict) and data.get("kind") == "ConfigMap":
        inner = (data.get("data") or {}).get(CONFIGMAP_KEY)
        if not isinstance(inner, str):
            raise SpecError(f"{source}: the ConfigMap has no {CONFIGMAP_KEY} key")
        return parse_spec(inner, f"{source} ({CONFIGMAP_KEY})")
    try:
        return decode(InjectionSpec, data, source)
    except ConfigError as exc:
        raise SpecError(str(exc)) from None


def load_spec(path: str | Path | None = None) -> InjectionSpec:
    """The spec in ``path``, or the packaged default (the operator chart's defaults)."""
    if path is None:
        text = resources.files(__package__).joinpath(DEFAULT_SPEC).read_text(encoding="utf-8")
        return parse_spec(text, f"the packaged {DEFAULT_SPEC}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: {exc.strerror or exc}") from None
    return parse_spec(text, str(path))

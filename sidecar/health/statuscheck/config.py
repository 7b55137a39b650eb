"""``statuscheck.conf``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from sidecar.config import DURATION

DEFAULT_NON_FATAL = ("etcd", "kafka", "k8s")


@dataclass(frozen=True)
class StatusCheckConfig:
    #: How often pull probes are called.
    probe_interval: Annotated[float, DURATION] = 5.0
    #: A probe that takes longer is ERROR ("did not answer within ...").
    probe_timeout: Annotated[float, DURATION] = 3.0
    #: All status keys are re-put this often to refresh ``last_update``.
    publish_interval: Annotated[float, DURATION] = 10.0
    #: Plugins whose ERROR fails readiness but not liveness: an outage of a
    #: shared server must not make the kubelet restart every pod.
    non_fatal: list[str] = field(default_factory=lambda: list(DEFAULT_NON_FATAL))

    def __post_init__(self) -> None:
        for key in ("probe_interval", "probe_timeout", "publish_interval"):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key.replace('_', '-')} must be greater than zero")

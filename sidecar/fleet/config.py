"""``fleet.conf``: its presence turns the fleet view on (it also needs ``etcd.conf``)."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.servicelabel.api import ALL_AGENTS_PREFIX


@dataclass(frozen=True)
class FleetConfig:
    #: ``false`` keeps the file but turns the fleet view off.
    enabled: bool = True
    #: Where agents publish: ``<prefix><label>/check/status/v1/agent`` is cached for each.
    prefix: str = ALL_AGENTS_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or not self.prefix.endswith("/"):
            raise ValueError(f"prefix: {self.prefix!r} must start and end with '/'")

"""What a sidecar publishes about its state besides the probes: its etcd keys and /metrics."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.probes import Answer
from tests.servers.etcd import EtcdServer
from tests.sidecar_proc import SidecarProcess


def status_prefix(label: str) -> str:
    return f"/vnf-agent/{label}/check/status/v1/"


def published(etcd: EtcdServer, prefix: str) -> dict[str, dict[str, Any]]:
    """Every status key under ``prefix``: suffix (``agent``, ``plugin/etcd``) -> JSON value."""
    out = etcd.etcdctl("get", prefix, "--prefix")
    lines = out.splitlines()
    return {key.removeprefix(prefix): json.loads(value)
            for key, value in zip(lines[::2], lines[1::2], strict=True)}


def metric(proc: SidecarProcess, name: str, **labels: str) -> float | None:
    """One sample of the sidecar's ``/metrics`` (None when it has no such sample)."""
    status, text = proc.get("/metrics")
    assert status == 200, text
    for family in text_string_to_metric_families(str(text)):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def only_failing(answers: list[Answer], plugin: str) -> list[Answer]:
    """The answers given while ``plugin`` was ERROR and every other plugin OK: what the
    outage of ``plugin`` alone made the probe answer."""
    return [a for a in answers if a.plugin_state(plugin) == 2
            and all(int(s["state"]) == 1 for n, s in a.plugins.items() if n != plugin)]

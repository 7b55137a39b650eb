"""A pod's end: ``kubectl delete pod`` and a rolling update stop the sidecar gracefully,
after the workload, with its status telling the truth until then and no program left."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests._wait import wait_until
from tests.e2e.conftest import (
    CHART,
    RELEASE,
    SIDECAR,
    Namespace,
    TaskEvent,
    condition,
    container_id,
    containerd_events,
)
from tests.servers import _machine
from tests.servers.etcd import etcd_binary

# A first test also waits for the cluster (and an image rebuild after a code change).
pytestmark = pytest.mark.timeout(600)


def _install(ns: Namespace) -> str:
    """The chart with a program and the sidecar's status published to the pods' etcd;
    returns the program's marker (in its command line)."""
    marker = f"hb-{uuid.uuid4().hex[:8]}"
    program = {"name": "heartbeat", "executable-path": "/bin/sh",
               "executable-args": ["-c", f"while true; do sleep 1; done # {marker}"],
               "restarts": -1}
    etcd = {"endpoints": [ns.cluster.pod_etcd_endpoint]}
    ns.helm_install("--set-json", f"config.etcd={json.dumps(etcd)}",
                    "--set-json", f"supervisor.programs={json.dumps([program])}")
    return marker


def _status_keys(ns: Namespace, label: str) -> dict[str, Any]:
    out = ns.cluster.run(etcd_binary("etcdctl"), f"--endpoints=http://{ns.cluster.pod_etcd_endpoint}",
                         "get", "--prefix", f"/vnf-agent/{label}/check/status/v1/").stdout
    lines = out.splitlines()
    return {k: json.loads(v) for k, v in zip(lines[::2], lines[1::2], strict=True)}


def _programs_of(pod: dict[str, Any], marker: str) -> list[int]:
    """The processes on the machine running the program (``marker`` in its command
    line) in ``pod`` (in its cgroup)."""
    cgroup = f"/pod{pod['metadata']['uid']}/"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                pid = int(entry.name)
                if (marker in _machine.cmdline(pid)
                        and any(cgroup in path for path in _machine.cgroup_paths(pid))):
                    found.append(pid)
            except OSError:
                continue
    return found


@contextmanager
def _watch_pod(ns: Namespace, pod: str) -> Iterator[list[dict[str, Any]]]:
    """Every version of the pod the API server had, until its deletion (which the
    block must bring about)."""
    log = ns.tmp / f"watch-{pod}.json"
    proc = ns.cluster.popen("kubectl", "-n", ns.name, "get", "pod", pod, "--watch",
                            "--output-watch-events", "-o", "json", log=log)
    versions: list[dict[str, Any]] = []
    try:
        wait_until(lambda: log.stat().st_size > 0, 30, f"watching pod {pod}")
        yield versions
        wait_until(lambda: re.search(r'"type":\s*"DELETED"', log.read_text()), 60,
                   f"the watch seeing pod {pod} deleted")
    finally:
        proc.terminate()
        proc.wait(10)
    text, decoder, at = log.read_text(), json.JSONDecoder(), 0
    while (at := _skip_space(text, at)) < len(text):
        event, at = decoder.raw_decode(text, at)
        versions.append(event["object"])


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def _check_graceful_stop(pod: dict[str, Any], events: list[TaskEvent],
                         versions: list[dict[str, Any]], ns: Namespace) -> None:
    sidecar, app = container_id(pod, SIDECAR), container_id(pod, "app")
    exits = {e.container: (i, e.exit_status) for i, e in enumerate(events)
             if e.topic == "/tasks/exit"}
    # Both ended on SIGTERM by themselves (a SIGKILL after the grace period is 137),
    # the sidecar after the workload.
    assert exits[app][1] == 0 and exits[sidecar][1] == 0, exits
    assert exits[app][0] < exits[sidecar][0]
    # The Pod never showed anything but OK, and the sidecar raised no alarm.
    shown = {v["metadata"].get("annotations", {}).get("cninfra.io/status") for v in versions}
    assert shown == {"OK"}, shown
    warnings = [e["reason"] for e in ns.events(pod["metadata"]["name"])
                if e["type"] == "Warning" and e["source"].get("component") == SIDECAR]
    assert warnings == []


def test_kubectl_delete_pod_stops_the_sidecar_last_and_leaves_nothing(ns: Namespace) -> None:
    marker = _install(ns)
    [pod] = ns.wait_ready()
    name = pod["metadata"]["name"]
    keys = wait_until(lambda: _status_keys(ns, name), 30, "the sidecar's status keys in etcd")
    assert keys[f"/vnf-agent/{name}/check/status/v1/agent"]["state"] == 1
    assert _programs_of(pod, marker)
    with containerd_events(ns.cluster, ns.tmp) as events, _watch_pod(ns, name) as versions:
        ns.kubectl("delete", "pod", name, "--timeout=60s")
    _check_graceful_stop(pod, events, versions, ns)
    # Its status keys went with it (the lease revoked at close), and its program.
    assert _status_keys(ns, name) == {}
    assert _programs_of(pod, marker) == []
    ns.wait_ready()  # the Deployment's replacement


def test_a_rolling_update_replaces_the_pod_gracefully(ns: Namespace) -> None:
    marker = _install(ns)
    [old] = ns.wait_ready()
    name = old["metadata"]["name"]
    wait_until(lambda: _status_keys(ns, name), 30, "the old pod's status keys")
    assert _programs_of(old, marker)
    with containerd_events(ns.cluster, ns.tmp) as events, _watch_pod(ns, name) as versions:
        # A config change rolls the pods (the chart's checksum annotation).
        ns.cluster.run("helm", "upgrade", RELEASE, str(CHART), "-n", ns.name, "--reuse-values",
                       "--set", "config.logs.default-level=debug", timeout=120)
        [new] = wait_until(lambda: [p for p in ns.wait_ready()
                                    if p["metadata"]["name"] != name] or None,
                           120, "the new pod Ready and the old one gone")
        wait_until(lambda: not [p for p in ns.pods() if p["metadata"]["name"] == name], 60,
                   "the old pod gone")
    _check_graceful_stop(old, events, versions, ns)
    assert _status_keys(ns, name) == {}
    assert _programs_of(old, marker) == []
    new_name = new["metadata"]["name"]
    assert condition(new, "cninfra.io/ready") == "True"
    keys = wait_until(lambda: _status_keys(ns, new_name), 30, "the new pod's status keys")
    assert keys[f"/vnf-agent/{new_name}/check/status/v1/agent"]["state"] == 1
    assert len(wait_until(lambda: _programs_of(new, marker), 30, "the new pod's program")) == 1

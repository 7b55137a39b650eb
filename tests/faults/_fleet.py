"""A small fleet of real sidecars publishing to one etcd cluster, polled as the kubelet
polls them, and the checks that say nothing of their status was lost."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests._wait import wait_until
from tests.faults.status import only_failing, status_prefix
from tests.probes import ProbePoller
from tests.servers.etcd import EtcdWatcher, etcdctl, lease_ids, leased_keys
from tests.sidecar_proc import SidecarProcess

#: etcd.conf of every agent: a short lease, so that a key that could be lost would be.
LEASE_TTL = 5.0
OPERATION_TIMEOUT = 1.0
DIAL_TIMEOUT = 0.5
#: statuscheck.conf: every key re-put this often.
PUBLISH_INTERVAL = 2.0


@dataclass
class Agent:
    """One sidecar: its label, process, probe poller, and a file that, once it exists,
    makes its program ``worker`` crash-loop (a change of its status during a fault)."""

    label: str
    proc: SidecarProcess
    break_file: Path
    probes: ProbePoller = field(init=False)

    def start(self) -> None:
        self.proc.start()
        self.probes = ProbePoller(self.proc.url).start()

    def break_worker(self) -> None:
        self.break_file.touch()

    def statuses(self) -> dict[str, int]:
        """What the sidecar itself says now: plugin -> state, and ``agent``."""
        body = self.proc.get("/liveness")[1]
        states = {f"plugin/{name}": int(p["state"]) for name, p in body["plugins"].items()}
        return {"agent": int(body["state"]), **states}


def start_agents(tmp_path: Path, sidecars: list[SidecarProcess],
                 endpoint_orders: Sequence[Sequence[str]], *, fleet_view: int | None = 0,
                 name: str = "agent") -> list[Agent]:
    """One sidecar per endpoint order (its first endpoint is where it connects first);
    the one at index ``fleet_view`` also serves the fleet view."""
    agents = []
    for i, endpoints in enumerate(endpoint_orders):
        label = f"{name}-{i}"
        config = tmp_path / label
        config.mkdir()
        quoted = ", ".join(f"'{e}'" for e in endpoints)
        (config / "etcd.conf").write_text(
            f"endpoints: [{quoted}]\ndial-timeout: {DIAL_TIMEOUT}s\n"
            f"operation-timeout: {OPERATION_TIMEOUT}s\nlease-ttl: {LEASE_TTL}s\n")
        (config / "statuscheck.conf").write_text(
            f"publish-interval: {PUBLISH_INTERVAL}s\nprobe-interval: 200ms\n")
        break_file = tmp_path / f"{label}.break"
        (config / "supervisor.conf").write_text(
            "programs:\n"
            "  - name: worker\n"
            "    executable-path: /bin/sh\n"
            f"    executable-args: ['-c', 'while [ ! -e {break_file} ]; do sleep 0.1; done; "
            "exit 3']\n"
            "    restarts: -1\n"
            "    backoff-base: 200ms\n"
            "    backoff-cap: 1s\n")
        if i == fleet_view:
            (config / "fleet.conf").write_text("enabled: true\n")
        proc = SidecarProcess(config, "--microservice-label", label)
        sidecars.append(proc)
        agents.append(Agent(label, proc, break_file))
    for agent in agents:
        agent.start()
    return agents


def published(endpoints: Sequence[str], label: str, consistency: str = "l") -> dict[str, int]:
    """The agent's keys in etcd: suffix -> published state (``consistency="s"``: what the
    member asked has itself, without asking the leader)."""
    prefix = status_prefix(label)
    reply = json.loads(etcdctl(endpoints, "get", prefix, "--prefix", "-w", "json",
                               f"--consistency={consistency}", timeout=10))
    return {base64.b64decode(kv["key"]).decode().removeprefix(prefix):
            int(json.loads(base64.b64decode(kv["value"]))["state"])
            for kv in reply.get("kvs", [])}


def key_revision(endpoints: Sequence[str], key: str) -> int:
    """The revision of the last write of ``key`` (0: no such key)."""
    reply = json.loads(etcdctl(endpoints, "get", key, "-w", "json", timeout=10))
    return max((int(kv["mod_revision"]) for kv in reply.get("kvs", [])), default=0)


def wait_published(endpoints: Sequence[str], agents: Sequence[Agent],
                   timeout: float = 15.0) -> None:
    """Until etcd holds exactly what each sidecar says about itself."""
    for agent in agents:
        def same(agent: Agent = agent) -> bool:
            in_etcd, own = published(endpoints, agent.label), agent.statuses()
            assert in_etcd == own, f"etcd {in_etcd} != the sidecar's {own}"
            return True

        wait_until(same, timeout, f"{agent.label}'s status in etcd equal to its own")


def fleet_view(agent: Agent) -> dict[str, int]:
    """label -> state, as the agent's /fleet serves it (only while it follows etcd)."""
    status, body = agent.proc.get("/fleet")
    assert status == 200, body
    if not body["synced"]:
        return {}
    return {a["label"]: int(a["state"]) for a in body["agents"]}


def wait_fleet_view(viewer: Agent, agents: Sequence[Agent], timeout: float = 15.0) -> None:
    """Until the fleet view shows every agent in the state it says it is in."""
    def correct() -> bool:
        shown, own = fleet_view(viewer), {a.label: a.statuses()["agent"] for a in agents}
        assert shown == own, f"the view {shown} != the agents' {own}"
        return True

    wait_until(correct, timeout, f"{viewer.label}'s fleet view equal to the agents' states")


def wait_etcd_ok(agents: Sequence[Agent], timeout: float = 15.0) -> None:
    for agent in agents:
        agent.probes.wait_for(lambda a: a.plugin_state("etcd") == 1, timeout,
                              f"{agent.label}: etcd plugin OK")


def assert_nothing_lost(endpoints: Sequence[str], agents: Sequence[Agent], watch: EtcdWatcher,
                        leases: set[int]) -> None:
    """No watcher saw an agent's key deleted, each agent's keys are what it says and
    hang on its one lease, and no other lease exists."""
    wait_published(endpoints, agents)
    watch.sync()
    deleted = watch.deletes()
    assert deleted == [], f"a watcher saw live agents' keys deleted: {deleted[:5]}"
    assert lease_ids(endpoints) == leases, "leases left behind (or lost)"
    for agent in agents:
        keys = leased_keys(endpoints, status_prefix(agent.label))
        assert len(set(keys.values())) == 1, f"{agent.label}'s keys on several leases: {keys}"
        assert set(keys.values()) <= leases


def assert_probes_held(agents: Sequence[Agent]) -> None:
    """Every probe answered within the kubelet's 1 s, liveness never failed and readiness
    never failed for etcd (etcd only reports: the kubelet would never restart the sidecar
    nor take the pod out of service for it)."""
    for agent in agents:
        agent.probes.stop()
        agent.probes.assert_always_answered()
        assert agent.probes.statuses("/liveness") == {200}, (
            agent.label, agent.probes.latency_summary())
        alone = only_failing(agent.probes.snapshot("/readiness"), "etcd")
        assert {a.status for a in alone} <= {200}, (agent.label, "readiness failed for etcd")


def etcd_error_span(agent: Agent, since: float) -> float:
    """Seconds from ``since`` to the last answer after it in which the agent's etcd
    plugin was not OK (0 when it never was)."""
    bad = [a.sent for a in agent.probes.snapshot("/liveness", since)
           if a.plugin_state("etcd") != 1]
    return max(bad) - since if bad else 0.0


def fleet_watch(endpoints: Sequence[str]) -> EtcdWatcher:
    """A watcher of every agent's keys (``with``: started, and always ended)."""
    return EtcdWatcher(endpoints, "/vnf-agent/")


def stop_agents(agents: Sequence[Agent], endpoints: Sequence[str]) -> None:
    """A clean stop revokes each agent's lease: its keys go at once."""
    for agent in agents:
        assert agent.proc.stop() == 0
    wait_until(lambda: all(published(endpoints, a.label) == {} for a in agents), 10,
               "every agent's keys gone after its clean stop")


"""A 3-member etcd cluster under faults, with three sidecars publishing to it (each
connected first to a different member, one of them serving the fleet view).

After each fault, for every sidecar: the probes answered within the kubelet's 1 s
throughout and liveness never failed; its status in etcd is what it says itself
(including a change made during the fault); a watcher of /vnf-agent/ saw none of
its keys deleted; it still has its one lease and no other lease exists; the fleet
view shows every agent in its true state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from tests._wait import wait_until
from tests.faults._fleet import (
    DIAL_TIMEOUT,
    LEASE_TTL,
    OPERATION_TIMEOUT,
    PUBLISH_INTERVAL,
    Agent,
    assert_nothing_lost,
    assert_probes_held,
    etcd_error_span,
    fleet_watch,
    key_revision,
    published,
    start_agents,
    stop_agents,
    wait_etcd_ok,
    wait_fleet_view,
    wait_published,
)
from tests.faults.status import status_prefix
from tests.servers.etcd import lease_ids
from tests.servers.etcd_cluster import EtcdCluster, EtcdMember
from tests.sidecar_proc import SidecarProcess

#: How long a sidecar on a member that stops answering takes to be back on another:
#: its keep-alive notices within lease-ttl/3 and its request times out after
#: operation-timeout; the next member is dialled after 0.2 s (dial-timeout at most).
FAILOVER_BOUND = LEASE_TTL / 3 + OPERATION_TIMEOUT + 0.2 + DIAL_TIMEOUT

# Three members, three sidecars and a fault on two shared cores: more than the default.
pytestmark = pytest.mark.timeout(240)


def rotated(endpoints: Sequence[str], first: int) -> list[str]:
    return [*endpoints[first:], *endpoints[:first]]


@pytest.fixture
def cluster() -> Iterator[EtcdCluster]:
    with EtcdCluster() as running:
        yield running


def fleet(cluster: EtcdCluster, tmp_path: Path, sidecars: list[SidecarProcess],
          first: Sequence[EtcdMember]) -> list[Agent]:
    """Agent i connects first to ``first[i]``; agent 0 serves the fleet view."""
    endpoints = cluster.endpoints
    agents = start_agents(tmp_path, sidecars,
                          [rotated(endpoints, m.index) for m in first])
    wait_etcd_ok(agents)
    wait_published(endpoints, agents)
    wait_fleet_view(agents[0], agents)
    return agents


def break_all(agents: Sequence[Agent]) -> None:
    """Each agent's program starts crash-looping: a change to publish during the fault."""
    for agent in agents:
        agent.break_worker()
    for agent in agents:
        agent.probes.wait_for(lambda a: a.plugin_state("program:worker") == 2, 15,
                              f"{agent.label}: program:worker ERROR", path="/liveness")


def test_leader_killed(cluster: EtcdCluster, tmp_path: Path,
                       sidecars: list[SidecarProcess]) -> None:
    leader = cluster.leader()
    others = [m for m in cluster.members if m is not leader]
    # Two sidecars on the leader (one of them the fleet view), one on a follower.
    agents = fleet(cluster, tmp_path, sidecars, [leader, leader, others[0]])
    with fleet_watch(cluster.urls) as watch:
        leases = lease_ids(cluster.urls)
        assert len(leases) == 3

        cluster.kill(leader)
        killed = time.monotonic()
        break_all(agents)
        wait_etcd_ok(agents)
        assert_nothing_lost(cluster.urls, agents, watch, leases)
        wait_fleet_view(agents[0], agents)
        for agent in agents[:2]:
            # A killed member closes its connections: the sidecar moves at once, and is
            # on another member (once a new leader answers) well before its lease ends.
            assert etcd_error_span(agent, killed) < LEASE_TTL, agent.label

        cluster.start_member(leader)
        assert_nothing_lost(cluster.urls, agents, watch, leases)
    assert_probes_held(agents)
    stop_agents(agents, cluster.urls)
    assert lease_ids(cluster.urls) == set()


def test_follower_partitioned_while_a_sidecar_is_connected_to_it(
    tmp_path: Path, sidecars: list[SidecarProcess]
) -> None:
    with EtcdCluster(isolated=True) as cluster:
        leader = cluster.leader()
        follower, other = [m for m in cluster.members if m is not leader]
        # The fleet view's sidecar is on the member that will be cut off.
        agents = fleet(cluster, tmp_path, sidecars, [follower, leader, other])
        majority = [leader.url, other.url]
        with fleet_watch(majority) as watch:
            leases = lease_ids(majority)

            agent_key = status_prefix(agents[0].label) + "agent"
            before = key_revision(majority, agent_key)
            cluster.isolate(follower)
            isolated = time.monotonic()
            # The cut-off member still answers, but cannot reach a quorum: the requests
            # of the sidecar on it time out there, and it moves to the majority side,
            # where its next status refresh (every 2 s) lands.
            wait_until(lambda: key_revision(majority, agent_key) > before,
                       FAILOVER_BOUND + PUBLISH_INTERVAL + 10,
                       "the cut-off member's sidecar writing to the majority")
            took = time.monotonic() - isolated
            assert took < FAILOVER_BOUND + PUBLISH_INTERVAL, f"failover took {took:.1f}s"
            # Another member answered at once: nobody was told etcd was unreachable.
            assert etcd_error_span(agents[0], isolated) == 0
            break_all(agents)
            assert_nothing_lost(majority, agents, watch, leases)
            wait_fleet_view(agents[0], agents)

            cluster.rejoin(follower)
            wait_until(follower.healthy, 20, "the cut-off member back in the cluster")
            assert_nothing_lost(cluster.urls, agents, watch, leases)
        assert_probes_held(agents)
        stop_agents(agents, cluster.urls)


def test_whole_cluster_restarted(cluster: EtcdCluster, tmp_path: Path,
                                 sidecars: list[SidecarProcess]) -> None:
    agents = fleet(cluster, tmp_path, sidecars, cluster.members)
    with fleet_watch(cluster.urls) as watch:
        leases = lease_ids(cluster.urls)

        for member in cluster.members:  # a power loss
            cluster.kill(member)
        for agent in agents:
            agent.probes.wait_for(lambda a: a.plugin_state("etcd") == 2, 15,
                                  f"{agent.label}: etcd ERROR", path="/liveness")
        break_all(agents)
        # Longer than the lease TTL: etcd's lease clocks stand still while it is down.
        time.sleep(LEASE_TTL + 1)
        cluster.start_all()
        wait_etcd_ok(agents)
        assert_nothing_lost(cluster.urls, agents, watch, leases)
        wait_fleet_view(agents[0], agents)
    assert_probes_held(agents)
    stop_agents(agents, cluster.urls)


def test_member_replaced(cluster: EtcdCluster, tmp_path: Path,
                         sidecars: list[SidecarProcess]) -> None:
    lost = cluster.members[1]
    # The fleet view's sidecar and one more are on the member whose machine is lost.
    agents = fleet(cluster, tmp_path, sidecars, [lost, lost, cluster.members[2]])
    with fleet_watch(cluster.urls) as watch:
        leases = lease_ids(cluster.urls)

        new = cluster.replace(lost)  # killed, removed, a new empty one added
        break_all(agents)
        wait_etcd_ok(agents)
        assert_nothing_lost(cluster.urls, agents, watch, leases)
        wait_fleet_view(agents[0], agents)
        # The new member holds every key itself.
        def on_new_member(agent: Agent) -> Callable[[], bool]:
            return lambda: published([new.url], agent.label, "s") == agent.statuses()

        for agent in agents:
            wait_until(on_new_member(agent), 10, f"{agent.label}'s keys on the new member")
    assert_probes_held(agents)
    stop_agents(agents, cluster.urls)

"""A 3-broker Kafka cluster (replication factor 3, ``min.insync.replicas=2``) under faults,
with three sidecars sync-publishing their status events to a topic
(``required-acks: all``, idempotent producer) and a consumer group of two
members (the product's Multiplexer) reading it and committing what it has read.

After each fault: every record a sidecar wrote is in the topic exactly once
(per sidecar, ``seq`` 1, 2, ... with no gap and no repeat); the group read every
one of them and committed up to the end of each partition; the probes answered
within the kubelet's 1 s throughout and liveness never failed; the kafka plugin
of each sidecar is OK again.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sidecar.messaging.kafka import BytesConnection, BytesMessage, ClientConfig, Multiplexer
from tests._wait import wait_until
from tests.probes import ProbePoller
from tests.servers.kafka_cluster import KafkaCluster, KafkaNode
from tests.sidecar_proc import SidecarProcess, request

SIDECARS = 3
PARTITIONS = 3

# Three JVMs, three sidecars and a fault on two shared cores: more than the default.
pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def running_cluster() -> Iterator[KafkaCluster]:
    with KafkaCluster() as running:
        yield running


@pytest.fixture
def cluster(running_cluster: KafkaCluster) -> KafkaCluster:
    """The module's cluster, whole again whatever the test before did to it."""
    running_cluster.heal()
    return running_cluster


# -- the topic ------------------------------------------------------------------------

async def _admin(cluster: KafkaCluster, work: Callable[[Any], Any]) -> Any:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=cluster.addrs, request_timeout_ms=10_000)
    await admin.start()
    try:
        return await work(admin)
    finally:
        await admin.close()


def create_topic(cluster: KafkaCluster, leader: KafkaNode) -> str:
    """A topic whose every partition is led by ``leader``, replicated on all nodes."""
    from aiokafka.admin import NewTopic

    topic = f"status-{uuid.uuid4().hex[:8]}"
    others = [n.node_id for n in cluster.nodes if n is not leader]
    replicas = {p: [leader.node_id, *others] for p in range(PARTITIONS)}
    asyncio.run(_admin(cluster, lambda admin: admin.create_topics(
        [NewTopic(topic, num_partitions=-1, replication_factor=-1,
                  replica_assignments=replicas)])))
    wait_fully_replicated(cluster, topic)
    return topic


def describe(cluster: KafkaCluster, topic: str) -> list[dict[str, Any]]:
    reply = asyncio.run(_admin(cluster, lambda admin: admin.describe_topics([topic])))
    return list(reply[0]["partitions"])


def wait_fully_replicated(cluster: KafkaCluster, topic: str, timeout: float = 60) -> None:
    """Until every partition of ``topic`` has all nodes in sync (the cluster is whole)."""
    def whole() -> bool:
        parts = describe(cluster, topic)
        assert len(parts) == PARTITIONS and all(len(p["isr"]) == cluster.size
                                                for p in parts), parts
        return True

    wait_until(whole, timeout, f"{topic} in sync on every node")


def read_all(cluster: KafkaCluster, topic: str) -> list[tuple[int, int, dict[str, Any]]]:
    """Every record of ``topic``: (partition, offset, JSON value), read from the oldest."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> list[tuple[int, int, dict[str, Any]]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=cluster.addrs, enable_auto_commit=False,
                                    isolation_level="read_committed")
        await consumer.start()
        try:
            parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            ends = await consumer.end_offsets(parts)
            out = []
            async def behind() -> bool:
                return any([await consumer.position(tp) < ends[tp] for tp in parts])

            async with asyncio.timeout(60):
                while await behind():
                    batches = await consumer.getmany(*parts, timeout_ms=500)
                    for records in batches.values():
                        out += [(r.partition, r.offset, json.loads(r.value)) for r in records]
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


def committed_and_ends(cluster: KafkaCluster, topic: str,
                       group: str) -> tuple[dict[int, int], dict[int, int]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def offsets(admin: Any) -> tuple[dict[int, int], dict[int, int]]:
        committed = await admin.list_consumer_group_offsets(group)
        consumer = AIOKafkaConsumer(bootstrap_servers=cluster.addrs)
        await consumer.start()
        try:
            ends = await consumer.end_offsets([TopicPartition(topic, p)
                                               for p in range(PARTITIONS)])
        finally:
            await consumer.stop()
        return ({tp.partition: meta.offset for tp, meta in committed.items()
                 if tp.topic == topic},
                {tp.partition: offset for tp, offset in ends.items()})

    result: tuple[dict[int, int], dict[int, int]] = asyncio.run(_admin(cluster, offsets))
    return result


# -- the consumer group -------------------------------------------------------------

@dataclass(frozen=True)
class Consumed:
    member: int
    partition: int
    offset: int
    instance: str
    seq: int
    at: float


class Group:
    """Members of one consumer group, each a Multiplexer with a topic watcher that marks
    every message it gets (committed every 200 ms), on an event loop in a thread of its
    own while the test drives the cluster.

    Their metadata is refreshed every 5 s: a consumer reading from a leader that was
    cut off from the cluster (and that it still reaches) gets no error, only no new
    records, and moves to the new leader at its next refresh (``metadata-max-age``).
    """

    def __init__(self, cluster: KafkaCluster, topic: str, members: int = 2) -> None:
        self.topic = topic
        self.group_id = f"readers-{uuid.uuid4().hex[:8]}"
        self.config = ClientConfig(addrs=tuple(cluster.addrs), request_timeout=10.0,
                                   commit_interval=0.2, session_timeout=6.0,
                                   metadata_max_age=5.0)
        self.consumed: list[Consumed] = []
        self._lock = threading.Lock()
        self._members = members
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="kafka-group",
                                        daemon=True)
        self._muxes: list[Multiplexer] = []

    def __enter__(self) -> Group:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(90)
        return self

    async def _start(self) -> None:
        for member in range(self._members):
            mux = Multiplexer(self.config, self.group_id, name=f"reader{member}")
            connection = mux.new_bytes_connection("status")

            await connection.consume_topic(self._reader(member, connection), self.topic)
            async with asyncio.timeout(60):
                while True:
                    try:
                        await mux.start()
                        break
                    except Exception:  # the cluster may still be settling
                        await asyncio.sleep(0.5)
            self._muxes.append(mux)

    def _reader(self, member: int,
                connection: BytesConnection) -> Callable[[BytesMessage], None]:
        def got(message: BytesMessage) -> None:
            record = json.loads(message.value or b"{}")
            with self._lock:
                self.consumed.append(Consumed(member, message.partition, message.offset,
                                              record["instance"], record["seq"],
                                              time.monotonic()))
            connection.mark_offset(message)

        return got

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for mux in self._muxes:
                await mux.close()

        try:
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()

    def snapshot(self, since: float = 0.0) -> list[Consumed]:
        with self._lock:
            return [c for c in self.consumed if c.at >= since]

    def identities(self) -> set[tuple[str, int]]:
        return {(c.instance, c.seq) for c in self.snapshot()}


# -- the sidecars -----------------------------------------------------------------

@dataclass
class Publisher:
    label: str
    proc: SidecarProcess
    probes: ProbePoller

    def restarts(self) -> int:
        return int(self.proc.get("/supervisor/programs/ticker")[1]["restarts"])

    def ticker(self, action: str) -> None:
        status, body = request("POST", f"{self.proc.url}/supervisor/programs/ticker/{action}")
        assert status == 200, body


def start_publishers(cluster: KafkaCluster, topic: str, tmp_path: Path,
                     sidecars: list[SidecarProcess]) -> list[Publisher]:
    """Sidecars whose program restarts about twice a second: a steady stream of
    program events, sync-published to ``topic``."""
    publishers = []
    addrs = ", ".join(f"'{a}'" for a in cluster.addrs)
    for i in range(SIDECARS):
        label = f"kafka-{i}"
        config = tmp_path / label
        config.mkdir()
        (config / "kafka.conf").write_text(
            f"addrs: [{addrs}]\nstatus-topic: {topic}\nrequired-acks: all\nidempotent: true\n"
            "request-timeout: 10s\nreconnect-interval: 1s\n")
        (config / "statuscheck.conf").write_text("probe-interval: 500ms\n")
        (config / "supervisor.conf").write_text(
            "programs:\n"
            "  - name: ticker\n"
            "    executable-path: /bin/sh\n"
            "    executable-args: ['-c', 'sleep 0.3; exit 1']\n"
            "    restarts: -1\n"
            "    backoff-base: 100ms\n"
            "    backoff-reset-after: 200ms\n")
        proc = SidecarProcess(config, "--microservice-label", label)
        sidecars.append(proc)
        publishers.append(Publisher(label, proc, ProbePoller(proc.url)))
    for publisher in publishers:
        publisher.proc.start(timeout=30)
        publisher.probes.start()
    for publisher in publishers:
        publisher.probes.wait_for(lambda a: a.plugin_state("kafka") == 1, 60,
                                  f"{publisher.label}: kafka OK", path="/liveness")
    return publishers


def flowing(group: Group, since: float, count: int = 5, timeout: float = 90) -> float:
    """Until the group has read ``count`` new records of every sidecar since ``since``;
    how long after ``since`` that was."""
    def enough() -> bool:
        per: dict[str, int] = {}
        for consumed in group.snapshot(since):
            per[consumed.instance] = per.get(consumed.instance, 0) + 1
        assert len(per) == SIDECARS and min(per.values()) >= count, per
        return True

    wait_until(enough, timeout, f"{count} new records of every sidecar read by the group")
    return time.monotonic() - since


def finish(cluster: KafkaCluster, topic: str, group: Group, publishers: Sequence[Publisher],
           after: dict[str, int] | None = None) -> dict[str, int]:
    """Stop the programs; once each sidecar's last event is in the topic, check that
    nothing was lost, repeated, or left unread by the group. Returns each sidecar's
    last ``seq`` (pass it as ``after`` to a later call: only events after it count
    as the last one)."""
    last = {}
    for publisher in publishers:
        publisher.ticker("stop")
        last[publisher.label] = publisher.restarts()
    floor = after or {}

    def last_event_read() -> bool:
        records = read_all(cluster, topic)
        seen = {(r["agent"], r["restarts"]) for _, _, r in records
                if r.get("type") == "program" and r.get("state") == "started"
                and r["seq"] > floor.get(r["agent"], 0)}
        missing = [label for label, n in last.items() if (label, n) not in seen]
        assert not missing, f"no last 'started' event yet from {missing}"
        return True

    wait_until(last_event_read, 60, "every sidecar's last program event in the topic")
    records = read_all(cluster, topic)
    by_instance: dict[str, list[int]] = {}
    for _, _, record in records:
        by_instance.setdefault(record["instance"], []).append(record["seq"])
    assert len(by_instance) == SIDECARS, by_instance.keys()
    for instance, seqs in by_instance.items():
        # Exactly once: the idempotent producer leaves no repeat, acks=all loses nothing.
        repeats = len(seqs) - len(set(seqs))
        assert repeats == 0, f"{instance}: {repeats} record(s) written twice"
        assert sorted(seqs) == list(range(1, len(seqs) + 1)), f"{instance}: records lost"
        # In order within the sidecar (its key keeps it on one partition).
        assert seqs == sorted(seqs), f"{instance}: out of order"

    written = {(r["instance"], r["seq"]) for _, _, r in records}
    wait_until(lambda: group.identities() >= written, 60,
               "the group reading every record")

    def all_committed() -> bool:
        committed, ends = committed_and_ends(cluster, topic, group.group_id)
        assert committed == ends, f"committed {committed}, ends {ends}"
        return True

    wait_until(all_committed, 30, "the group committing up to the end of every partition")
    last_seq: dict[str, int] = {}
    for _, _, record in records:
        last_seq[record["agent"]] = max(last_seq.get(record["agent"], 0), record["seq"])
    return last_seq


def check_probes(publishers: Sequence[Publisher]) -> None:
    for publisher in publishers:
        publisher.probes.wait_for(lambda a: a.plugin_state("kafka") == 1, 30,
                                  f"{publisher.label}: kafka OK", path="/liveness")
        publisher.probes.stop()
        publisher.probes.assert_always_answered()
        # kafka only reports: the kubelet would never have restarted the sidecar.
        assert publisher.probes.statuses("/liveness") == {200}, (
            publisher.label, publisher.probes.latency_summary())
        assert publisher.proc.stop() == 0


def leader_of(cluster: KafkaCluster, topic: str) -> set[int]:
    return {p["leader"] for p in describe(cluster, topic)}


# -- the faults -----------------------------------------------------------------------

def test_partition_leader_killed_while_publishing(cluster: KafkaCluster, tmp_path: Path,
                                                  sidecars: list[SidecarProcess]) -> None:
    leader = cluster.nodes[0]
    topic = create_topic(cluster, leader)
    with Group(cluster, topic) as group:
        publishers = start_publishers(cluster, topic, tmp_path, sidecars)
        flowing(group, 0)

        cluster.kill(leader)
        killed = time.monotonic()
        wait_until(lambda: leader.node_id not in leader_of(cluster, topic), 30,
                   "new leaders for the dead broker's partitions")
        took = flowing(group, killed)  # writes and reads go on on the other two
        print(f"leader killed: every sidecar's records flowing again after {took:.1f}s")

        cluster.start_node(leader)
        wait_fully_replicated(cluster, topic)
        finish(cluster, topic, group, publishers)
    check_probes(publishers)


def test_broker_partitioned_away_while_publishing(cluster: KafkaCluster, tmp_path: Path,
                                                  sidecars: list[SidecarProcess]) -> None:
    cut = cluster.nodes[1]
    topic = create_topic(cluster, cut)
    with Group(cluster, topic) as group:
        publishers = start_publishers(cluster, topic, tmp_path, sidecars)
        flowing(group, 0)

        # The cut-off broker still answers the sidecars (they reach it on their side of
        # the partition) but can no longer replicate or reach the controllers.
        cluster.isolate(cut)
        isolated = time.monotonic()
        took = flowing(group, isolated)
        print(f"partition: every sidecar's records flowing again after {took:.1f}s")

        cluster.rejoin(cut)
        wait_fully_replicated(cluster, topic)
        finish(cluster, topic, group, publishers)
    check_probes(publishers)


def test_whole_cluster_restarted(cluster: KafkaCluster, tmp_path: Path,
                                 sidecars: list[SidecarProcess]) -> None:
    topic = create_topic(cluster, cluster.nodes[2])
    with Group(cluster, topic) as group:
        publishers = start_publishers(cluster, topic, tmp_path, sidecars)
        flowing(group, 0)
        # Everything read and committed, then the programs write again: after the
        # restart the group must go on from its committed offsets, neither reading an
        # old record again nor skipping one.
        before = finish(cluster, topic, group, publishers)
        committed, _ = committed_and_ends(cluster, topic, group.group_id)

        cluster.kill_all()
        down = time.monotonic()
        for publisher in publishers:
            publisher.probes.wait_for(lambda a: a.plugin_state("kafka") == 2, 30,
                                      f"{publisher.label}: kafka ERROR", path="/liveness")
            publisher.ticker("start")  # events queue up while Kafka is down
        cluster.start_all()
        wait_fully_replicated(cluster, topic)
        flowing(group, down)
        after = group.snapshot(down)
        first = {p: min(c.offset for c in after if c.partition == p)
                 for p in {c.partition for c in after}}
        assert all(first[p] == committed[p] for p in first), (first, committed)
        finish(cluster, topic, group, publishers, after=before)
    check_probes(publishers)

"""A real 3-broker Apache Kafka cluster (KRaft; every node a controller and a broker),
each node in a network namespace of its own so that a test can partition one.

    with KafkaCluster() as cluster:
        cluster.addrs                       # ["127.0.0.1:P0", ...], for kafka.conf
        cluster.kill(cluster.nodes[0]); cluster.start_node(cluster.nodes[0])
        cluster.isolate(node) ... cluster.rejoin(node)
        cluster.kill_all(); cluster.start_all()

Replication factor 3 and ``min.insync.replicas=2`` for every topic (also the
internal ones). The nodes talk to each other (replication, the KRaft quorum)
over a bridge between the namespaces (see ``netns.py``); clients on the host
reach each node's client listener through a relay at the address the node
advertises, so a client keeps reaching a node that ``isolate`` cut off from the
others, as one on its side of a partition would. The jars and the JVM come
from ``kafka.py`` (``scripts/provision/kafka.sh``).
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Self

from ._process import wait_ready
from .kafka import STARTED_LINE, KafkaBroker, _api_versions_ok, _random_cluster_id
from .netns import Network

__all__ = ["KafkaCluster", "KafkaNode"]

#: Ports inside a node's own namespace.
_CLIENT, _INTERNAL, _CONTROLLER = 9092, 9093, 9094


class KafkaNode(KafkaBroker):
    """One node of a KafkaCluster: ``node_id`` is its broker id and its index."""

    what = "Kafka node"

    def __init__(self, cluster: KafkaCluster, node_id: int) -> None:
        super().__init__(cluster.properties, heap=cluster.heap,
                         startup_timeout=cluster.startup_timeout,
                         workdir=cluster.workdir / f"node{node_id}")
        self.cluster = cluster
        self.node_id = node_id
        self.cluster_id = cluster.cluster_id
        self.port = cluster.network.relay(node_id, _CLIENT).port
        self.controller_port = 0  # inside the namespace: _CONTROLLER

    def __repr__(self) -> str:
        return f"<Kafka node {self.node_id} at {self.bootstrap}>"

    @property
    def address(self) -> str:
        """Where the other nodes reach it."""
        return self.cluster.network.address(self.node_id)

    def ports(self) -> dict[str, int]:
        return {"client relay": self.port}

    def _repick(self) -> None:
        raise AssertionError("a node in its own namespace has its ports to itself")

    def _java_cmd(self) -> list[str]:
        return self.cluster.network.command(self.node_id, super()._java_cmd())

    def _write_config(self) -> Path:
        super()._write_config()  # the log4j2 file
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(
                f"{n}@{self.cluster.network.address(n)}:{_CONTROLLER}"
                for n in range(self.cluster.size)),
            "listeners": f"CLIENT://127.0.0.1:{_CLIENT},INTERNAL://{self.address}:{_INTERNAL},"
                         f"CONTROLLER://{self.address}:{_CONTROLLER}",
            "advertised.listeners": f"CLIENT://{self.bootstrap},"
                                    f"INTERNAL://{self.address}:{_INTERNAL}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "listener.security.protocol.map":
                "CLIENT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            **self.DEFAULTS,
            **self.cluster.CLUSTER_DEFAULTS,
            **self.properties,
        }
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def format_storage(self) -> None:
        if not self._formatted:
            self.workdir.mkdir(parents=True, exist_ok=True)
            self._format(self._write_config())
            self._formatted = True

    def spawn(self) -> None:
        """Start the process without waiting (the first nodes of a quorum wait for the
        others)."""
        self.format_storage()
        props = self._write_config()
        self._process.start([*self._java_cmd(), "kafka.Kafka", str(props)], cwd=self.workdir)

    def wait_serving(self) -> None:
        try:
            self._wait_ready()
        except BaseException:
            self._process.kill()
            raise
        self._started = True


class KafkaCluster:
    """``size`` KRaft nodes; see the module docstring."""

    #: Every topic on all three nodes, a write confirmed by two ("acks=all").
    CLUSTER_DEFAULTS: ClassVar[dict[str, str]] = {
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "share.coordinator.state.topic.replication.factor": "3",
        "share.coordinator.state.topic.min.isr": "2",
        "unclean.leader.election.enable": "false",
        # A follower that stops fetching leaves the in-sync replicas after this long
        # (30 s by default); until then acks=all writes wait for it.
        "replica.lag.time.max.ms": "5000",
    }

    def __init__(self, size: int = 3, properties: Mapping[str, object] | None = None, *,
                 heap: str = "384m", startup_timeout: float = 120.0) -> None:
        self.size = size
        self.properties = dict(properties or {})
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="kafka-cluster-"))
        self.cluster_id = _random_cluster_id()
        self.network = Network(size)
        self.nodes: list[KafkaNode] = []

    @property
    def addrs(self) -> list[str]:
        return [n.bootstrap for n in self.nodes]

    @property
    def bootstrap(self) -> str:
        return ",".join(self.addrs)

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id]

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> Self:
        self.network.start()
        if not self.nodes:
            self.nodes = [KafkaNode(self, i) for i in range(self.size)]
        # Formatting is one JVM per node: in parallel.
        self._together(lambda node: node.format_storage())
        self.start_all()
        return self

    def _together(self, work: Callable[[KafkaNode], object]) -> None:
        errors: list[BaseException] = []

        def run(node: KafkaNode) -> None:
            try:
                work(node)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(n,)) for n in self.nodes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    def start_all(self) -> None:
        """Start every node that is not running, then wait until each serves (a node
        finishes starting only once a quorum of controllers is up)."""
        down = [n for n in self.nodes if not n.running]
        for node in down:
            node.spawn()
        try:
            self.wait_serving(down)
        except BaseException:
            for node in down:
                node.kill()
            raise

    def wait_serving(self, nodes: Sequence[KafkaNode]) -> None:
        started = {n.node_id: False for n in nodes}

        def all_serving() -> bool | str:
            waiting = []
            for node in nodes:
                started[node.node_id] = (started[node.node_id]
                                         or STARTED_LINE in node._process.output())
                if not (started[node.node_id] and _api_versions_ok(node.port)):
                    waiting.append(str(node.node_id))
            return not waiting or "not serving yet: nodes " + ", ".join(waiting)

        wait_ready(f"Kafka nodes {[n.node_id for n in nodes]} serving", all_serving,
                   self.startup_timeout, *(n._process for n in nodes), interval=0.2)

    def start_node(self, node: KafkaNode) -> None:
        """Start a killed or stopped node again, with its data."""
        if not node.running:
            node.spawn()
            node.wait_serving()

    def kill(self, node: KafkaNode) -> None:
        node.kill()

    def kill_all(self) -> None:
        for node in self.nodes:
            node.kill()

    def isolate(self, node: KafkaNode) -> None:
        """Partition ``node`` from the other nodes (clients still reach it)."""
        self.network.isolate(node.node_id)

    def rejoin(self, node: KafkaNode) -> None:
        self.network.rejoin(node.node_id)

    def heal(self) -> None:
        """Every node back on the network and running (after a test that broke it, and
        perhaps failed before it could mend it)."""
        for node in self.nodes:
            self.rejoin(node)
        self.start_all()

    def close(self) -> None:
        for node in self.nodes:
            node.kill()
        self.network.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

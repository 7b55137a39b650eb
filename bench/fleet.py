"""Fleet scale: many agents publishing their status to one etcd, and the /fleet view of them.

Each simulated agent is the real code of a sidecar's status path: an Agent with
ServiceLabelPlugin, StatusCheck, EtcdPlugin (its own connection and lease) and
StatusPublisher, plus three push-reported plugins, so that every refresh puts
five keys (the agent key, etcd and the three) in one transaction. Several
hundred agents share a worker process and its event loop; workers are separate
processes. The etcd figures come from etcd's own /metrics over windows of whole
publish intervals (every agent refreshes exactly once per interval in a window):
raft entries are ``etcd_server_proposals_committed_total``. Flapping: 1 % of the
agents flip one plugin between ERROR and OK every ``--flap-period``. /fleet: a
real ``sidecar run`` with fleet.conf follows the same etcd; the time from an
agent's ``report_state_change`` to ``GET /fleet/<label>`` showing it. Cluster:
the same agents against a 3-member etcd cluster (each lists every member, a
third of them each member first): the steady state again (etcd CPU summed over
the members), then the leader killed ``--leader-changes`` times (started again
in between): how long until a new leader, how long each agent whose status
write fell into the change waited from that write to its next one that etcd
took (the stall), and how many agents reported their etcd plugin ERROR.

    python -m bench.fleet [--agents 1000] [--workers 4] [--publish-interval 10]
                          [--window-intervals 3] [--windows 3] [--flap-period 1]
                          [--changes 30] [--cluster-windows 1] [--leader-changes 3]

The publish interval is the product default (10 s); a shorter one would only
shorten the run, and the per-interval figures do not depend on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import random
import re
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import (
    Figure,
    collect,
    percentile,
    report,
    rss_mib,
    start_sidecar,
    stop,
    wait_ready,
)

#: Push-reported plugins each simulated agent has besides etcd (5 keys per refresh).
PLUGINS = ("app", "kafka", "process-manager")
FLAPPER = PLUGINS[0]
#: Quick runs (`python -m bench --quick`): fewer agents and shorter windows.
QUICK_ARGS = ["--agents", "200", "--workers", "2", "--window-intervals", "1", "--windows", "1",
              "--changes", "10", "--leader-changes", "1"]
#: One run for the report: the run repeats its measurement windows itself.
RUNS = 1


def label_of(index: int) -> str:
    return f"fleet-{index:05d}"


# -- the worker process: many agents in one event loop --------------------------------------

class TimedWriter:
    """The etcd plugin as the publisher sees it (a LeasedWriter), noting when each of
    its status writes began and ended and whether etcd took it."""

    def __init__(self, etcd: Any) -> None:
        self._etcd = etcd
        #: (began, ended, ok), Unix seconds.
        self.writes: list[tuple[float, float, bool]] = []

    async def commit(self, puts: Any, deletes: Any = ()) -> None:
        began = time.time()
        try:
            await self._etcd.commit(puts, deletes)
        except BaseException:
            self.writes.append((began, time.time(), False))
            raise
        self.writes.append((began, time.time(), True))

    def add_session_listener(self, callback: Any) -> None:
        self._etcd.add_session_listener(callback)

    def stall_since(self, since: float) -> float | None:
        """From this agent's first write at or after ``since`` to the end of its first
        write after that which etcd took (None: no write in that time)."""
        first = next((w for w in self.writes if w[0] >= since), None)
        if first is None:
            return None
        done = next((w for w in self.writes if w[0] >= first[0] and w[2]), None)
        return None if done is None else done[1] - first[0]


class SimAgent:
    """One sidecar's status path, built from the product's own plugins."""

    def __init__(self, index: int, endpoints: list[str], interval: float) -> None:
        from sidecar.agent import Agent
        from sidecar.health.statuscheck import (
            StatusCheck,
            StatusCheckConfig,
            StatusPublisher,
        )
        from sidecar.kvstore.etcd import EtcdConfig, EtcdPlugin
        from sidecar.servicelabel import ServiceLabelPlugin

        self.label = label_of(index)
        self.statuscheck = StatusCheck(StatusCheckConfig(publish_interval=interval))
        servicelabel = ServiceLabelPlugin(self.label)
        # Each lists every member, a different one first: the fleet spreads over them.
        first = index % len(endpoints)
        self.etcd = EtcdPlugin(EtcdConfig(endpoints=[*endpoints[first:], *endpoints[:first]]),
                               self.statuscheck)
        self.writer = TimedWriter(self.etcd)
        self.publisher = StatusPublisher(self.statuscheck, self.writer, servicelabel.agent_prefix)
        self.agent = Agent(servicelabel, self.statuscheck, self.etcd, self.publisher)
        self.agent.on_started(self.statuscheck.mark_started)
        self.flapping: asyncio.Task[None] | None = None
        self.flips = 0
        #: When the etcd plugin turned ERROR (Unix seconds).
        self.etcd_errors: list[float] = []
        self._etcd_error = False
        self.statuscheck.add_listener(self._changed)

    def _changed(self) -> None:
        from sidecar.health.statuscheck import PluginState

        status = self.statuscheck.plugin_status("etcd")
        error = status is not None and status.state is PluginState.ERROR
        if error and not self._etcd_error:
            self.etcd_errors.append(time.time())
        self._etcd_error = error

    def saw_error_since(self, since: float) -> bool:
        return any(t >= since for t in self.etcd_errors)

    async def start(self) -> None:
        from sidecar.health.statuscheck import PluginState

        for name in PLUGINS:
            self.statuscheck.report_state_change(name, PluginState.OK)
        await self.agent.start()

    @property
    def published(self) -> bool:
        return self.etcd.connected and self.publisher.commits > 0

    def set_state(self, error: bool) -> float:
        from sidecar.health.statuscheck import PluginState

        stamp = time.time()
        self.flips += 1
        self.statuscheck.report_state_change(
            FLAPPER, PluginState.ERROR if error else PluginState.OK, "flapping" if error else None)
        return stamp

    async def flap(self, period: float) -> None:
        error = True
        await asyncio.sleep(random.uniform(0, period))
        while True:
            self.set_state(error)
            error = not error
            await asyncio.sleep(period)


def worker_main(conn: multiprocessing.connection.Connection, endpoints: list[str], first: int,
                count: int, interval: float, total: int, start_at: float) -> None:
    logging.basicConfig(level=logging.CRITICAL)
    asyncio.run(_worker(conn, endpoints, first, count, interval, total, start_at))


async def _start_at(agent: SimAgent, at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.time()))
    await agent.start()


async def _worker(conn: multiprocessing.connection.Connection, endpoints: list[str], first: int,
                  count: int, interval: float, total: int, start_at: float) -> None:
    agents = {first + i: SimAgent(first + i, endpoints, interval) for i in range(count)}
    ordered = list(agents.values())
    # Starts spread evenly over one publish interval, as pods of a real fleet start at
    # unrelated times: the refreshes are then spread too, not one burst per interval.
    await asyncio.gather(*(_start_at(agents[i], start_at + interval * i / total)
                           for i in agents))
    deadline = time.monotonic() + 60
    while not all(a.published for a in ordered):
        if time.monotonic() > deadline:
            raise RuntimeError("agents did not publish within 60 s")
        await asyncio.sleep(0.1)
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[Any] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
    conn.send(("ready", count))
    try:
        while True:
            command, *args = await commands.get()
            if command == "flap":
                indexes, period = args
                for index in indexes:
                    agents[index].flapping = asyncio.create_task(
                        agents[index].flap(period), name=f"flap-{index}")
                conn.send(("ok",))
            elif command == "unflap":
                for agent in ordered:
                    task, agent.flapping = agent.flapping, None
                    if task is not None:
                        task.cancel()
                conn.send(("ok",))
            elif command == "flips":
                conn.send(("ok", sum(a.flips for a in ordered)))
            elif command == "set":
                index, error = args
                conn.send(("ok", agents[index].set_state(error)))
            elif command == "since":  # what a fault starting at args[0] did to the agents
                since = args[0]
                stalls = [s for a in ordered
                          if (s := a.writer.stall_since(since)) is not None]
                errors = sum(a.saw_error_since(since) for a in ordered)
                unfinished = sum(1 for a in ordered if a.writer.stall_since(since) is None
                                 and any(w[0] >= since for w in a.writer.writes))
                conn.send(("ok", stalls, errors, unfinished))
            elif command == "stop":
                break
    finally:
        loop.remove_reader(conn.fileno())
        for agent in ordered:
            if agent.flapping is not None:
                agent.flapping.cancel()
        await asyncio.gather(*(a.agent.stop() for a in ordered), return_exceptions=True)
        conn.send(("stopped",))


# -- the parent: etcd, workers, windows -----------------------------------------------------

@dataclass
class Worker:
    process: multiprocessing.process.BaseProcess
    conn: multiprocessing.connection.Connection
    first: int
    count: int

    def call(self, *command: Any, timeout: float = 30) -> Any:
        self.conn.send(command)
        if not self.conn.poll(timeout):
            raise TimeoutError(f"worker {self.first}: no answer to {command[0]}")
        return self.conn.recv()


COUNTERS = {
    "entries": "etcd_server_proposals_committed_total",
    "puts": "etcd_mvcc_put_total",
    "put_bytes": "etcd_debugging_mvcc_total_put_size_in_bytes",
    "wal_bytes": "etcd_disk_wal_write_bytes_total",
    "fsyncs": "etcd_disk_wal_fsync_duration_seconds_count",
    "fsync_seconds": "etcd_disk_wal_fsync_duration_seconds_sum",
    "renewals": "etcd_debugging_lease_renewed_total",
    "cpu": "process_cpu_seconds_total",
    "db_bytes": "etcd_mvcc_db_total_size_in_bytes",
}


def etcd_counters(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for key, metric in COUNTERS.items():
        match = re.search(rf"^{metric}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
        if match is None:
            raise RuntimeError(f"etcd does not export {metric}")
        values[key] = float(match.group(1))
    return values


def measure_window(server: Any, seconds: float) -> dict[str, float]:
    before = etcd_counters(server.metrics())
    time.sleep(seconds)
    after = etcd_counters(server.metrics())
    return {key: after[key] - before[key] for key in COUNTERS}


class Members:
    """A 3-member cluster seen as one server by ``measure_window``: its counters are
    the leader's (every member commits every entry; the WAL and puts likewise), except
    CPU, summed over the members."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster

    def metrics(self) -> str:
        leader = self.cluster.leader()
        text = leader.metrics()
        cpu = sum(etcd_counters(m.metrics())["cpu"] for m in self.cluster.members)
        return re.sub(r"^process_cpu_seconds_total .*$", f"process_cpu_seconds_total {cpu}",
                      text, flags=re.M)


def start_workers(endpoints: list[str], agents: int, workers: int,
                  interval: float) -> list[Worker]:
    context = multiprocessing.get_context("spawn")  # grpc must not be forked
    started = []
    per = -(-agents // workers)
    start_at = time.time() + 3  # every worker imported and connected its pipe by then
    for first in range(0, agents, per):
        count = min(per, agents - first)
        parent, child = context.Pipe()
        process = context.Process(target=worker_main, args=(
            child, endpoints, first, count, interval, agents, start_at), daemon=True)
        process.start()
        started.append(Worker(process, parent, first, count))
    for worker in started:
        if not worker.conn.poll(180):
            raise TimeoutError(f"worker {worker.first} did not start its agents in 180 s")
        worker.conn.recv()
    return started


def stop_workers(workers: list[Worker]) -> None:
    for worker in workers:
        if worker.process.is_alive():
            with contextlib.suppress(OSError, EOFError, TimeoutError):
                worker.call("stop", timeout=20)
        worker.process.join(5)
        if worker.process.is_alive():
            worker.process.kill()


def worker_of(workers: list[Worker], index: int) -> Worker:
    return next(w for w in workers if w.first <= index < w.first + w.count)


def report_load(phase: str) -> None:
    """The machine's 1-minute load average now: the cores may be shared, and every CPU
    and latency figure beside it depends on what else ran."""
    report(f"{phase}: machine load average (1 min) while measuring", os.getloadavg()[0],
           "load", higher_is_better=False)


def steady(server: Any, agents: int, interval: float, args: argparse.Namespace) -> float:
    """Reports the steady-state figures; returns the median raft entries per second."""
    window = interval * args.window_intervals
    rates: list[float] = []
    for _ in range(args.windows):
        delta = measure_window(server, window)
        rates.append(delta["entries"] / window)
        per_second = delta["entries"] / window / agents
        report("steady: raft entries per agent per publish interval", per_second * interval,
               "entries", "target <= 1.05")
        report(f"steady: raft entries per second, {agents:,} agents", delta["entries"] / window,
               "entries/s", higher_is_better=False)
        report("steady: keys written per agent per interval", delta["puts"] / agents
               / args.window_intervals, "keys")
        report("steady: etcd WAL bytes per agent per second", delta["wal_bytes"] / window / agents,
               "bytes")
        report("steady: lease keep-alives per agent per second (no raft entry)",
               delta["renewals"] / window / agents, "/s", higher_is_better=False)
        report(f"steady: etcd CPU, {agents:,} agents", delta["cpu"] / window * 100, "% core")
        report("steady: etcd WAL fsyncs per second", delta["fsyncs"] / window, "/s",
               higher_is_better=False)
        report("steady: etcd WAL fsync, mean", delta["fsync_seconds"] / max(delta["fsyncs"], 1)
               * 1000, "ms")
        report_load("steady")
    return statistics.median(rates)


def flapping(server: Any, workers: list[Worker], agents: int, interval: float,
             args: argparse.Namespace, baseline: float) -> None:
    flappers = max(1, agents // 100)
    chosen = random.Random(7).sample(range(agents), flappers)
    for worker in workers:
        mine = [i for i in chosen if worker.first <= i < worker.first + worker.count]
        worker.call("flap", mine, args.flap_period)
    try:
        time.sleep(args.flap_period * 2)
        window = interval * args.window_intervals
        for _ in range(args.windows):
            flips = sum(w.call("flips")[1] for w in workers)
            delta = measure_window(server, window)
            changes = sum(w.call("flips")[1] for w in workers) - flips
            report(f"1% flapping ({flappers} agents, a change every {args.flap_period:g} s): "
                   "raft entries per agent per second", delta["entries"] / window / agents,
                   "entries/s", higher_is_better=False)
            report("1% flapping: raft entries per state change",
                   (delta["entries"] - baseline * window) / changes, "entries", "target <= 1.05")
            report(f"1% flapping: etcd CPU, {agents:,} agents", delta["cpu"] / window * 100,
                   "% core")
    finally:
        for worker in workers:
            worker.call("unflap")


def cluster_steady(cluster: Any, agents: int, interval: float,
                   args: argparse.Namespace) -> None:
    window = interval * args.window_intervals
    members = Members(cluster)
    for _ in range(args.cluster_windows):
        delta = measure_window(members, window)
        report("3-member cluster: raft entries per agent per publish interval",
               delta["entries"] / window / agents * interval, "entries", "target <= 1.05")
        report(f"3-member cluster: raft entries per second, {agents:,} agents",
               delta["entries"] / window, "entries/s", higher_is_better=False)
        report(f"3-member cluster: etcd CPU, 3 members together, {agents:,} agents",
               delta["cpu"] / window * 100, "% core")
        report("3-member cluster: etcd WAL bytes per agent per second (each member)",
               delta["wal_bytes"] / window / agents, "bytes")
        report_load("3-member cluster")


def leader_change(cluster: Any, workers: list[Worker], agents: int, interval: float) -> None:
    """Kill the leader; figures on the election and on the agents; start it again."""
    leader = cluster.leader()
    killed = time.time()
    began = time.monotonic()
    cluster.kill(leader)
    cluster.leader(timeout=30)
    report("leader change: until a new leader", (time.monotonic() - began) * 1000, "ms")
    report_load("3-member cluster")
    # Every agent writes once a publish interval: after two, each that wrote across the
    # change has been through it.
    time.sleep(interval * 2)
    stalls: list[float] = []
    errors = unfinished = 0
    for worker in workers:
        _, worker_stalls, worker_errors, worker_unfinished = worker.call("since", killed)
        stalls += worker_stalls
        errors += worker_errors
        unfinished += worker_unfinished
    # The agents whose write fell into the election (those that wrote later were not
    # held up): the stall is how long from that write to its next that etcd took.
    early = [s for s in sorted(stalls) if s > 0.2]
    report("leader change: agents whose status write waited > 200 ms", len(early), "agents",
           higher_is_better=False)
    if early:
        report("leader change: status write stall of those, p50", percentile(early, 50)
               * 1000, "ms")
        report("leader change: status write stall, longest", early[-1] * 1000, "ms")
    report(f"leader change: agents that reported etcd ERROR (of {agents:,})", errors, "agents",
           higher_is_better=False)
    report("leader change: agents with a write not taken two intervals later", unfinished,
           "agents", "target <= 0")
    cluster.start_member(leader)


def cluster_phase(agents: int, args: argparse.Namespace) -> None:
    from tests.servers.etcd_cluster import EtcdCluster

    interval = args.publish_interval
    with EtcdCluster() as cluster:
        workers: list[Worker] = []
        try:
            workers = start_workers(cluster.endpoints, agents, args.workers, interval)
            time.sleep(interval)
            cluster_steady(cluster, agents, interval, args)
            for _ in range(args.leader_changes):
                leader_change(cluster, workers, agents, interval)
                time.sleep(interval)  # the restarted member catches up
        finally:
            stop_workers(workers)


def http_get(conn: http.client.HTTPConnection, path: str) -> tuple[int, Any]:
    conn.request("GET", path)
    reply = conn.getresponse()
    return reply.status, json.loads(reply.read())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fleet_view(endpoint: str, workers: list[Worker], agents: int, changes: int,
               interval: float) -> None:
    config = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    (config / "etcd.conf").write_text(f"endpoints: ['{endpoint}']\n")
    (config / "fleet.conf").write_text("enabled: true\n")
    (config / "logs.conf").write_text("default-level: warning\n")
    begin = time.perf_counter()
    proc, port = start_sidecar(config, "--microservice-label", "fleet-viewer")
    try:
        wait_ready(proc, port, timeout=60)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while True:
            status, body = http_get(conn, "/fleet")
            if status == 200 and body["count"] >= agents:
                break
            time.sleep(0.01)
        report(f"/fleet: sidecar start until it lists {agents:,} agents",
               (time.perf_counter() - begin) * 1000, "ms")
        took = []
        for _ in range(20):
            t0 = time.perf_counter()
            http_get(conn, "/fleet")
            took.append(time.perf_counter() - t0)
        report(f"GET /fleet with {agents:,} agents (median of 20)",
               statistics.median(took) * 1000, "ms")
        # What following the fleet costs, without requests: one publish interval.
        cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(interval)
        cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - wall0)
        report(f"fleet sidecar CPU following {agents:,} agents", cpu * 100, "% core")
        report(f"fleet sidecar RSS with {agents:,} agents", rss_mib(proc.pid), "MiB")

        latencies = []
        rng = random.Random(11)
        for change in range(changes):
            index = rng.randrange(agents)
            label = label_of(index)
            error = change % 2 == 0
            wanted = 2 if error else 1
            worker = worker_of(workers, index)
            worker.conn.send(("set", index, error))
            deadline = time.monotonic() + 10
            while True:
                status, body = http_get(conn, f"/fleet/{label}")
                if status == 200 and body["state"] == wanted:
                    seen = time.time()
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"/fleet never showed {label} in state {wanted}")
                time.sleep(0.002)
            _, stamp = worker.conn.recv()
            latencies.append(max(seen - stamp, 0.0))
            if not error:
                continue
            # Back to OK before the next agent, so that every agent stays OK but one.
            worker.call("set", index, False)
            time.sleep(0.05)
        ms = [s * 1000 for s in latencies]
        report("/fleet reflects a change: p50", percentile(ms, 50), "ms")
        report("/fleet reflects a change: p99", percentile(ms, 99), "ms")
        conn.close()
    finally:
        stop(proc)
        shutil.rmtree(config, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4, help="processes the agents share")
    parser.add_argument("--publish-interval", type=float, default=10.0,
                        help="statuscheck publish-interval, s (default 10, the product's)")
    parser.add_argument("--window-intervals", type=int, default=3,
                        help="publish intervals per measurement window")
    parser.add_argument("--windows", type=int, default=3, help="windows per measurement")
    parser.add_argument("--flap-period", type=float, default=1.0,
                        help="seconds between two state changes of a flapping agent")
    parser.add_argument("--changes", type=int, default=30, help="changes timed through /fleet")
    parser.add_argument("--cluster-windows", type=int, default=1,
                        help="steady-state windows against the 3-member cluster")
    parser.add_argument("--leader-changes", type=int, default=3,
                        help="times the cluster's leader is killed (0: no cluster phase)")
    args = parser.parse_args(argv)
    logging.getLogger("sidecar").setLevel(logging.CRITICAL)

    from tests.servers.etcd import EtcdServer

    print(f"fleet scale (issue 10): {args.agents:,} agents in {args.workers} processes, "
          f"publish-interval {args.publish_interval:g} s")
    server = EtcdServer().start()
    workers: list[Worker] = []
    try:
        workers = start_workers([server.endpoint], args.agents, args.workers,
                                args.publish_interval)
        time.sleep(args.publish_interval)  # the start-up writes (leases, first puts) settle
        baseline = steady(server, args.agents, args.publish_interval, args)
        flapping(server, workers, args.agents, args.publish_interval, args, baseline)
        fleet_view(server.endpoint, workers, args.agents, args.changes, args.publish_interval)
    finally:
        stop_workers(workers)
        server.close()
    if args.leader_changes > 0:
        print(f"the same {args.agents:,} agents against a 3-member etcd cluster")
        cluster_phase(args.agents, args)


def figures(argv: list[str] | None = None) -> list[Figure]:
    """What ``main(argv)`` reports, as records (``python -m bench`` writes BENCHMARKS.md)."""
    return collect(main, argv)


def report_section(medians: dict[str, float]) -> str:
    """BENCHMARKS.md's paragraph on what the fleet figures mean for 10,000 pods.

    Everything is scaled through rates per raft entry or per agent and interval, so
    it holds for any ``--publish-interval``; the 10,000 pods refresh at the default 10 s.
    """
    def find(prefix: str) -> float | None:
        return next((v for k, v in medians.items() if k.startswith(prefix)), None)

    def agents_in(prefix: str) -> str:
        return next((k.split(", ", 1)[1].strip() for k in medians if k.startswith(prefix)),
                    "the simulated agents")

    per_interval = find("steady: raft entries per agent per publish interval")
    rate = find("steady: raft entries per second")
    if per_interval is None or not rate:
        return ""
    per_change = find("1% flapping: raft entries per state change")
    wal = find("steady: etcd WAL bytes per agent per second")
    cpu = find("steady: etcd CPU")
    fsyncs = find("steady: etcd WAL fsyncs per second")
    fsync_ms = find("steady: etcd WAL fsync, mean")
    fleet_cpu = find("fleet sidecar CPU")
    reflect = find("/fleet reflects a change: p50")
    reflect99 = find("/fleet reflects a change: p99")
    agents = agents_in("steady: etcd CPU")
    pods, interval = 10_000, 10.0
    measured_agents = rate / per_interval * interval  # at the measured interval
    fleet_rate = pods * per_interval / interval
    scale = fleet_rate / rate  # how much more etcd traffic 10,000 pods make
    lines = [
        "## Fleet scale: what it implies for 10,000 pods",
        "",
        f"From bench/fleet.py: {agents} (the real status publishing code) against one "
        "etcd; each agent has five status keys, a lease of 15 s kept alive every 5 s. "
        "Scaled to 10,000 pods at the default `publish-interval` of 10 s through the "
        "per-agent and per-entry figures." + _load_text(find("steady: machine load average")),
        "",
        f"- **Steady state**: {per_interval:.2f} raft entries per agent per publish "
        "interval, as designed (a refresh re-puts all keys in one transaction; lease "
        f"keep-alives are not raft entries). 10,000 pods write **{fleet_rate:,.0f} raft "
        f"entries/s** ({fleet_rate * 5:,.0f} key versions/s) to the shared etcd.",
    ]
    if wal is not None:
        lines.append(f"- etcd's WAL grows by {wal:,.0f} bytes per agent per second, "
                     f"{wal * pods / 2**20:.1f} MiB/s for 10,000 pods, and the MVCC history "
                     "keeps every refresh until it is compacted: the etcd of a large fleet "
                     "needs `--auto-compaction-retention` (minutes, not hours) and a "
                     "defrag now and then.")
    if cpu is not None:
        lines.append(f"- etcd used {cpu:.1f} % of a core for {rate:,.0f} entries/s; in "
                     f"proportion, {cpu * scale:.0f} % of a core of this machine for 10,000 "
                     "pods.")
    if fsyncs is not None and fsync_ms is not None:
        lines.append(f"- Refreshes arrive spread over the interval (pods start at unrelated "
                     f"times), so etcd could batch little: {fsyncs / rate:.2f} WAL fsyncs "
                     f"per entry, {fsync_ms:.1f} ms each on this disk. At "
                     f"{fleet_rate:,.0f} entries/s that is up to "
                     f"{fleet_rate * fsyncs / rate:,.0f} fsyncs/s (etcd batches more as "
                     "they queue): give the fleet's etcd a disk with a low fsync latency, "
                     "as etcd's own guidance asks.")
    if per_change is not None:
        lines.append(f"- **Flapping**: a state change costs {per_change:.2f} raft entries "
                     "(the changed keys, at once, in one transaction). 1 % of 10,000 pods "
                     "flapping once a second adds 100 entries/s "
                     f"(+{100 / fleet_rate:.0%} over the steady state); the publisher does "
                     "not rate-limit changes, so faster flapping costs proportionally more.")
    if reflect is not None:
        shown = f"{reflect:.1f} ms" + (f" (p99 {reflect99:.1f} ms)" if reflect99 else "")
        lines.append(f"- **/fleet** showed an agent's change {shown} after its "
                     f"`report_state_change`, with {measured_agents:,.0f} agents "
                     "refreshing around it: one etcd write and one watch event away.")
    if fleet_cpu is not None:
        lines.append(f"- The fleet sidecar watches the whole prefix, so it receives every "
                     f"refresh of every agent: {fleet_cpu:.1f} % of a core for "
                     f"{rate:,.0f} entries/s, about {fleet_cpu * scale:.0f} % for 10,000 "
                     "pods. Serve the fleet view from a few sidecars, never from every pod "
                     "(every pod watching every pod is N² traffic).")
    lines += _cluster_lines(find, cpu, scale, agents)
    return "\n".join(lines)


def _load_text(load: float | None) -> str:
    if load is None:
        return ""
    return (f" The machine's load average (1 min) was {load:.1f} on its {os.cpu_count()} "
            "cores while measuring: with other work on them, the CPU and latency figures "
            "come out higher than on a machine of its own.")


def _cluster_lines(find: Any, single_cpu: float | None, scale: float, agents: str) -> list[str]:
    """The 3-member cluster's part of the section (empty when it was not measured)."""
    per_interval = find("3-member cluster: raft entries per agent per publish interval")
    cpu = find("3-member cluster: etcd CPU")
    if per_interval is None or cpu is None:
        return []
    lines = [
        "",
        "### Against a 3-member etcd cluster",
        "",
        f"- **Steady state**: the same {agents} write {per_interval:.2f} raft entries per "
        "agent per publish interval (replication adds no entry; each member writes every "
        f"entry to its own WAL). The three members together used {cpu:.1f} % of a core"
        + (f", {cpu / single_cpu:.1f} times the single etcd's" if single_cpu else "")
        + f"; in proportion {cpu * scale:.0f} % of a core for 10,000 pods, spread over "
        "three machines in production." + _load_text(find("3-member cluster: machine load")),
    ]
    election = find("leader change: until a new leader")
    waited = find("leader change: agents whose status write waited")
    stall = find("leader change: status write stall of those, p50")
    longest = find("leader change: status write stall, longest")
    errors = find("leader change: agents that reported etcd ERROR")
    if election is not None and waited is not None:
        text = (f"- **A leader change** (the leader killed): a new leader after "
                f"{election:,.0f} ms. {waited:,.0f} agents had a status write that waited "
                "more than 200 ms")
        if stall is not None and longest is not None:
            text += (f" (median {stall:,.0f} ms, at most {longest:,.0f} ms: a write a "
                     "follower had passed to the dying leader is lost with it and times "
                     "out after `operation-timeout`, 3 s, before the publisher writes "
                     "again)")
        if errors is not None:
            text += (f"; {errors:,.0f} reported their etcd plugin ERROR (a sidecar whose "
                     "member dies moves to the next one before it reports anything)")
        unfinished = find("leader change: agents with a write not taken")
        if unfinished == 0:
            text += ("; every agent's writes were taken again within two publish intervals "
                     "(tests/faults/test_etcd_cluster.py checks that no key or lease is lost)")
        lines.append(text + ".")
    return lines

if __name__ == "__main__":
    main()

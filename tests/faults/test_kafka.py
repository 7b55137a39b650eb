"""The Kafka broker killed (SIGKILL) and restarted under a sidecar that sync-publishes its
status events (agent state changes and supervisor program events) to a topic."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

from sidecar.messaging.kafka import OFFSET_OLDEST, ClientConfig, PartitionConsumer
from sidecar.messaging.kafka.client import ConsumerMessage
from tests._wait import wait_until
from tests.faults.status import metric, only_failing, published, status_prefix
from tests.k8s.cluster import PodEnv
from tests.probes import ProbePoller
from tests.servers.etcd import EtcdServer
from tests.servers.kafka import KafkaBroker
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess, request


def read_topic(broker: KafkaBroker, topic: str, until: Any, timeout: float) -> list[Any]:
    """The topic's records (JSON) from the oldest, read until ``until(records)`` holds."""
    async def read() -> list[Any]:
        records: list[ConsumerMessage] = []
        reader = PartitionConsumer(ClientConfig(addrs=(broker.bootstrap,)), topic, 0,
                                   OFFSET_OLDEST, records.append)
        await reader.start()
        try:
            deadline = time.monotonic() + timeout
            while not until([json.loads(r.value or b"") for r in records]):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
        finally:
            await reader.stop()
        return [json.loads(r.value or b"") for r in records]

    return asyncio.run(read())


def dedupe(records: list[Any]) -> list[Any]:
    """The records without repeats of a ``(instance, seq)`` already seen, in topic order."""
    seen: set[tuple[str, int]] = set()
    unique = []
    for record in records:
        identity = (record["instance"], record["seq"])
        if identity not in seen:
            seen.add(identity)
            unique.append(record)
    return unique


def kafka_errors(records: list[Any]) -> list[int]:
    """The positions of the agent-state records that say ERROR with the kafka plugin ERROR
    (a slow start may have put another plugin in ERROR before)."""
    return [i for i, r in enumerate(records) if r["type"] == "agent-state" and r["state"] == 2
            and r["plugins"].get("kafka", {}).get("state") == 2]


def test_broker_killed_and_restarted(own_kafka: KafkaBroker, etcd_server: EtcdServer,
                                     kube_apiserver: KubeApiServer, config_dir: Path,
                                     tmp_path: Path, sidecars: list[SidecarProcess]) -> None:
    topic = f"status-{uuid.uuid4().hex[:8]}"
    label = f"faults-kafka-{topic}"
    # Where else the sidecar reports: etcd, and its Pod.
    (config_dir / "etcd.conf").write_text(f"endpoints: ['{etcd_server.endpoint}']\n")
    pod = PodEnv(kube_apiserver, tmp_path)
    pod.write_k8s_conf(config_dir, status={"min-interval": "200ms"})
    (config_dir / "kafka.conf").write_text(
        f"addrs: ['{own_kafka.bootstrap}']\nstatus-topic: {topic}\n"
        "request-timeout: 3s\nreconnect-interval: 1s\n")
    (config_dir / "statuscheck.conf").write_text("probe-interval: 500ms\n")
    # Restarts about twice a second: a steady stream of program events to publish. Runs
    # longer than backoff-reset-after are no crash loop, so the program stays OK.
    (config_dir / "supervisor.conf").write_text(
        "programs:\n"
        "  - name: ticker\n"
        "    executable-path: /bin/sh\n"
        "    executable-args: ['-c', 'sleep 0.3; exit 1']\n"
        "    restarts: -1\n"
        "    backoff-base: 100ms\n"
        "    backoff-reset-after: 200ms\n")
    proc = SidecarProcess(config_dir, "--microservice-label", label, env=pod.env())
    sidecars.append(proc)
    proc.start()

    def ticker_restarts() -> int:
        return int(proc.get("/supervisor/programs/ticker")[1]["restarts"])

    with ProbePoller(proc.url) as probes:
        # Readiness does not wait for Kafka (kafka only reports): the plugin must be OK.
        probes.wait_for(lambda a: a.status == 200 and a.plugin_state("kafka") == 1, 30,
                        "readiness 200 and the kafka plugin OK")
        wait_until(lambda: ticker_restarts() >= 3, 10, "the ticker restarting")

        own_kafka.kill()
        down = probes.wait_for(lambda a: a.plugin_state("kafka") == 2, 20,
                               "the kafka plugin ERROR")
        # kafka only reports: the agent state says ERROR, the pod stays in service, and
        # etcd, /metrics and the Pod's annotations show why.
        assert (down.status, down.body["state"]) == (200, 2)
        assert "kafka" in down.body["group"]["left_out"]
        assert metric(proc, "cninfra_plugin_state", plugin="kafka", state="error") == 1
        assert metric(proc, "cninfra_agent_ready") == 1

        def kafka_error_in_etcd() -> dict[str, Any] | None:
            keys = published(etcd_server, status_prefix(label))
            return keys if keys.get("plugin/kafka", {}).get("state") == 2 else None

        assert wait_until(kafka_error_in_etcd, 10, "kafka ERROR in etcd")["agent"]["state"] == 2
        wait_until(lambda: pod.shown() == ("ERROR", "True"), 10, "the Pod showing ERROR / Ready")
        assert pod.detail()["plugins"]["kafka"]["state"] == 2
        during = ticker_restarts()
        wait_until(lambda: ticker_restarts() >= during + 10, 15,
                   "ten more restarts while Kafka is down (supervision goes on)")

        own_kafka.start()
        probes.wait_for(lambda a: a.plugin_state("kafka") == 1, 30, "the kafka plugin OK again")
        status, _ = request("POST", proc.url + "/supervisor/programs/ticker/stop")
        assert status == 200
        last = ticker_restarts()

    # Every program event queued while the broker was down reached the topic, in order.
    def complete(records: list[Any]) -> bool:
        started = [r["restarts"] for r in records
                   if r.get("type") == "program" and r.get("state") == "started"]
        # The agent's ERROR -> OK may be queued after the last start the test saw.
        agent_states = [r["state"] for r in records if r.get("type") == "agent-state"]
        recovered = 2 in agent_states and 1 in agent_states[agent_states.index(2):]
        return started[-1:] == [last] and recovered

    written = read_topic(own_kafka, topic, complete, timeout=30)
    # At least once: a write cut off by the kill may be repeated, with its seq. Once the
    # repeats are dropped, the seqs of this one sidecar run are 1, 2, ... with no gap.
    assert len({r["instance"] for r in written}) == 1
    records = dedupe(written)
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1)), "records lost"
    started = [r["restarts"] for r in records
               if r.get("type") == "program" and r.get("state") == "started"]
    assert started == list(range(last + 1)), "program events lost or out of order"
    times = [r["time"] for r in records if r.get("type") == "program"]
    assert times == sorted(times)
    # The agent state went ERROR with the broker and back to OK, and both are on record.
    went_down = kafka_errors(records)
    assert went_down, "no agent-state record of the broker's outage"
    assert any(r["type"] == "agent-state" and (r["previous_state"], r["state"]) == (2, 1)
               for r in records[went_down[0]:])

    probes.assert_always_answered()
    alone = only_failing(probes.snapshot("/readiness"), "kafka")
    assert alone, "no answer while only the kafka plugin was ERROR"
    assert {a.status for a in alone} == {200}  # the outage never took the pod out of service
    assert probes.statuses("/liveness") == {200}, probes.latency_summary()
    assert proc.stop() == 0

"""Program events reach Kafka's status topic (a real broker), wired by the builder."""

from __future__ import annotations

from pathlib import Path

from sidecar.builder import Options, build
from tests._wait import until
from tests.kafka.conftest import kafka_broker, unique  # noqa: F401 - the fixture
from tests.kafka.test_plugin import read_records
from tests.servers._util import free_port
from tests.servers.kafka import KafkaBroker


async def test_program_events_are_published_to_the_status_topic(
        tmp_path: Path, kafka_broker: KafkaBroker) -> None:  # noqa: F811
    topic = unique("programs")
    (tmp_path / "kafka.conf").write_text(f"addrs: ['{kafka_broker.bootstrap}']\n"
                                         f"status-topic: {topic}\nrequest-timeout: 10s\n")
    (tmp_path / "http.conf").write_text(f"endpoint: 127.0.0.1:{free_port()}\n")
    (tmp_path / "supervisor.conf").write_text("""
programs:
  - {name: oneshot, executable-path: /bin/sh, executable-args: ["-c", "exit 7"]}
""")
    sidecar = build(Options(config_dir=str(tmp_path), microservice_label=unique("agent"),
                            env={}))
    assert sidecar.supervisor is not None and sidecar.kafka is not None
    agent = sidecar.agent()
    await agent.start()
    try:
        events = sidecar.kafka.events
        assert events is not None
        # started, running and terminated (queued before Kafka was reachable), the
        # agent's state
        await until(lambda: events.sent >= 4, 30, "status records written")
        records = await read_records(kafka_broker, topic, 4)
    finally:
        await agent.stop()
    programs = [r for r in records if r["type"] == "program"]
    assert [(r["program"], r["state"]) for r in programs][:3] == [
        ("oneshot", "started"), ("oneshot", "running"), ("oneshot", "terminated")]
    crash = programs[2]
    assert crash["crashed"] is True and crash["exit_code"] == 7
    assert crash["event_type"] == "ProcessStatus" and isinstance(crash["pid"], int)
    assert crash["agent"] == sidecar.servicelabel.agent_label()

"""The Kafka plugin: kafka.conf, start-up without brokers, outages, readiness, status events."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sidecar.builder import Options, Sidecar, build
from sidecar.config import ConfigSources, ConfigValueError
from sidecar.health.statuscheck import PluginState
from sidecar.messaging.kafka import (
    OFFSET_OLDEST,
    BytesMessage,
    KafkaConfig,
    KafkaPlugin,
    PartitionConsumer,
    PublishError,
)
from sidecar.messaging.kafka.client import ConsumerMessage
from tests._wait import until, wait_until
from tests.kafka.conftest import client_config, unique
from tests.servers._util import free_port
from tests.servers.kafka import KafkaBroker
from tests.sidecar_proc import SidecarProcess, run_sidecar

ROOT = Path(__file__).resolve().parents[2]


def write_config(directory: Path, broker: KafkaBroker, extra: str = "") -> Path:
    (directory / "kafka.conf").write_text(
        f"addrs: ['{broker.bootstrap}']\nrequest-timeout: 5s\nreconnect-interval: 500ms\n"
        f"session-timeout: 6s\n{extra}")
    (directory / "statuscheck.conf").write_text("probe-interval: 200ms\nprobe-timeout: 3s\n")
    (directory / "http.conf").write_text(f"endpoint: 127.0.0.1:{free_port()}\n")
    return directory


@pytest.fixture
async def started(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sidecar]:
    """An in-process sidecar with kafka.conf; the param: (broker fixture, extra kafka.conf)."""
    broker_fixture, extra = getattr(request, "param", ("kafka_broker", ""))
    broker: KafkaBroker = request.getfixturevalue(broker_fixture)
    sidecar = build(Options(config_dir=str(write_config(tmp_path, broker, extra)),
                            microservice_label=unique("agent"), env={}))
    agent = sidecar.agent()
    await agent.start()
    yield sidecar
    await agent.stop()


def kafka_state(sidecar: Sidecar) -> PluginState | None:
    status = sidecar.statuscheck.plugin_status("kafka")
    return status.state if status is not None else None


# -- configuration --------------------------------------------------------------------


def test_the_example_kafka_conf_loads_and_group_id_defaults_to_the_label(tmp_path: Path) -> None:
    example = ROOT / "examples" / "optional" / "kafka.conf"
    config = ConfigSources.from_env(None, {"kafka": str(example)}, {}).load("kafka", KafkaConfig)
    assert config.addrs == ["127.0.0.1:9092"] and config.group_id is None
    assert config.required_acks == "all" and config.partitioner == "hash"

    (tmp_path / "kafka.conf").write_text(example.read_text())
    sidecar = build(Options(config_dir=str(tmp_path), microservice_label="demo", env={}))
    assert isinstance(sidecar.kafka, KafkaPlugin) and sidecar.kafka in sidecar.plugins
    assert sidecar.kafka.mux.group_id == "demo"
    assert sidecar.kafka.mux.config.client_id == "demo"

    (tmp_path / "kafka.conf").write_text("group_id: orders\naddrs: ['k1:9092', 'k2:9093']\n"
                                         "metadata-max-age: 20s\n")
    sidecar = build(Options(config_dir=str(tmp_path), microservice_label="demo", env={}))
    assert sidecar.kafka is not None and sidecar.kafka.mux.group_id == "orders"
    assert sidecar.kafka.mux.config.addrs == ("k1:9092", "k2:9093")
    assert sidecar.kafka.mux.config.metadata_max_age == 20.0


@pytest.mark.parametrize(("text", "expected"), [
    ("group-id: x\n", "unknown key (did you mean 'group_id'?)"),
    ("addrs: ['no-port']\n", "'no-port' is not HOST:PORT"),
    ("required-acks: most\n", "expected one of none, leader, all"),
    ("idempotent: true\nrequired-acks: leader\n", "needs required-acks: all"),
    ("sasl: {username: u}\n", "exactly one of password and password-file"),
    ("tls: {cert-file: /c.pem}\n", "must be set together"),
])
def test_bad_kafka_conf_names_the_file_and_the_key(tmp_path: Path, text: str,
                                                   expected: str) -> None:
    path = tmp_path / "kafka.conf"
    path.write_text(text)
    with pytest.raises(ConfigValueError) as caught:
        ConfigSources.from_env(tmp_path, {}, {}).load("kafka", KafkaConfig)
    assert str(path) in str(caught.value) and expected in str(caught.value)


def test_kafka_config_flag_and_env_point_at_the_file(tmp_path: Path) -> None:
    path = tmp_path / "elsewhere.yaml"
    path.write_text("addrs: ['127.0.0.1:1']\n")
    by_env = build(Options(microservice_label="x", env={"KAFKA_CONFIG": str(path)}))
    by_flag = build(Options(config_files={"kafka": str(path)}, microservice_label="x", env={}))
    assert by_env.kafka is not None and by_flag.kafka is not None
    result = run_sidecar(tmp_path, "--kafka-config", str(tmp_path / "missing.conf"))
    assert result.returncode == 2 and "missing.conf" in result.stderr


def test_aiokafka_is_imported_only_when_kafka_is_enabled(tmp_path: Path) -> None:
    (tmp_path / "kafka.conf").write_text("addrs: ['127.0.0.1:1']\n")
    script = (
        "import sys\n"
        "from sidecar.builder import Options, build\n"
        f"off = build(Options(config_dir={str(ROOT / 'examples' / 'config')!r}, env={{}}))\n"
        "assert off.kafka is None\n"
        "assert 'aiokafka' not in sys.modules, 'loaded with kafka off'\n"
        f"on = build(Options(config_dir={str(tmp_path)!r}, env={{}}))\n"
        "assert on.kafka is not None\n"
        "assert 'aiokafka' not in sys.modules, 'loaded before the plugin starts'\n"
        "print('ok')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, check=False, cwd=ROOT)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_an_unreadable_tls_file_fails_the_start_up_naming_it(tmp_path: Path) -> None:
    (tmp_path / "kafka.conf").write_text(
        "addrs: ['127.0.0.1:1']\ntls: {ca-file: /nonexistent/ca.pem}\n")
    result = run_sidecar(tmp_path, "--http-port", str(free_port()))
    assert result.returncode == 1
    assert "kafka" in result.stderr and "/nonexistent/ca.pem" in result.stderr


# -- outages: a real sidecar process and its probes -----------------------------------


def test_broker_down_at_start_up_then_killed_the_status_follows_and_the_probes_stay_up(
        own_kafka: KafkaBroker, config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    write_config(config_dir, own_kafka)
    own_kafka.stop()  # down before the sidecar starts
    proc = SidecarProcess(config_dir, "--microservice-label", unique("proc")).start()
    sidecars.append(proc)

    def kafka_is(state: PluginState) -> dict[str, Any] | None:
        _code, body = proc.get("/readiness")
        plugin = body["plugins"].get("kafka") if isinstance(body, dict) else None
        return body if plugin is not None and plugin["state"] == state else None

    body = wait_until(lambda: kafka_is(PluginState.ERROR), 20, "kafka ERROR at start-up")
    assert isinstance(body, dict)
    assert own_kafka.bootstrap in body["plugins"]["kafka"]["error"]
    assert body["state"] == 2  # the agent state says so
    # kafka only reports: no probe fails for it (no pod out of service, no restart).
    assert "kafka" in body["group"]["left_out"]
    assert proc.get("/readiness")[0] == 200 and proc.get("/liveness")[0] == 200

    own_kafka.start()
    body = wait_until(lambda: kafka_is(PluginState.OK), 30, "kafka OK once Kafka is up")
    assert isinstance(body, dict) and body["state"] == 1

    own_kafka.kill()
    body = wait_until(lambda: kafka_is(PluginState.ERROR), 20, "kafka ERROR after the kill")
    assert isinstance(body, dict) and body["plugins"]["kafka"].get("error")
    assert body["state"] == 2
    assert proc.get("/readiness")[0] == 200 and proc.get("/liveness")[0] == 200

    own_kafka.start()
    wait_until(lambda: kafka_is(PluginState.OK), 30, "kafka OK after the restart")
    assert proc.stop() == 0


async def test_broker_down_at_start_is_error_until_it_comes_never_init_again(
        own_kafka: KafkaBroker, tmp_path: Path) -> None:
    # A probe answered "connecting" (INIT) after the first attempt had failed: the agent
    # went INIT -> ERROR -> INIT -> ERROR, and each flip was an agent-state record.
    topic = unique("status")
    write_config(tmp_path, own_kafka, f"status-topic: {topic}\n")
    await asyncio.to_thread(own_kafka.stop)
    sidecar = build(Options(config_dir=str(tmp_path), microservice_label=unique("late"),
                            env={}))
    kafka, statuscheck = sidecar.kafka, sidecar.statuscheck
    assert kafka is not None and kafka.events is not None
    seen: list[PluginState] = [PluginState.INIT]
    failed_attempts: list[str | None] = []

    def on_change() -> None:
        state = kafka_state(sidecar)
        if state is not None and state is not seen[-1]:
            seen.append(state)

    def reported(name: str, state: PluginState, error: str | None = None) -> None:
        if name == "kafka" and state is PluginState.ERROR:
            failed_attempts.append(error)
        report(name, state, error)

    report = statuscheck.report_state_change
    statuscheck.report_state_change = reported  # type: ignore[method-assign]
    statuscheck.add_listener(on_change)
    agent = sidecar.agent()
    await agent.start()
    try:
        await until(lambda: kafka_state(sidecar) is PluginState.ERROR, 20, "kafka ERROR")
        # Retries and probe rounds go by: the state holds at ERROR through them all.
        await until(lambda: len(failed_attempts) >= 5, 20, "five failed attempts")
        assert seen == [PluginState.INIT, PluginState.ERROR]
        await asyncio.to_thread(own_kafka.start)
        await until(lambda: kafka_state(sidecar) is PluginState.OK, 60, "kafka OK")
        events = kafka.events
        await until(lambda: events.sent >= 3, 30, "the queued agent-state records written")
    finally:
        await agent.stop()
    assert seen == [PluginState.INIT, PluginState.ERROR, PluginState.OK]
    records = await read_records(own_kafka, topic, events.sent)
    assert [(r["type"], r.get("previous_state"), r["state"]) for r in records] == [
        ("agent-state", None, 0), ("agent-state", 0, 2), ("agent-state", 2, 1)]


class _Tally(logging.Filter):
    """Counts what a logger is asked to log, before any other filter decides."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            self.count += 1
        return True


@pytest.mark.parametrize("started", [("own_kafka", "")], indirect=True)
async def test_a_dead_broker_is_a_few_log_lines_not_a_flood(
        started: Sidecar, own_kafka: KafkaBroker, caplog: pytest.LogCaptureFixture) -> None:
    kafka = started.kafka
    assert kafka is not None
    await asyncio.wait_for(kafka.wait_connected(), 20)
    # A consumer, a producer and the group: every part of the client that retries.
    topic = unique("noise")
    conn = kafka.new_bytes_connection("noise")
    publisher = conn.new_async_publisher(topic)
    publisher.put(None, "before")
    await conn.consume_topic(lambda _m: None, topic)
    await until(lambda: kafka_state(started) is PluginState.OK, 10, "kafka OK")
    asked = _Tally()
    library = [logging.getLogger(name) for name in logging.root.manager.loggerDict
               if name == "aiokafka" or name.startswith("aiokafka.")]
    for logger in library:
        logger.filters.insert(0, asked)  # before the plugin's summary
    caplog.set_level(logging.INFO)
    caplog.clear()
    try:
        await asyncio.to_thread(own_kafka.kill)
        for n in range(20):
            publisher.put(None, f"during-{n}")
        # Without the summary, 300 of these reached the log within a few seconds.
        await until(lambda: asked.count >= 300, 30, "aiokafka retrying for a while")
        library_lines = [r for r in caplog.records if r.name.startswith("aiokafka")]
        assert len(library_lines) <= 20, [r.getMessage()[:80] for r in library_lines]
        # Then, once per interval, one line says how many more there were.
        def counted() -> list[int]:
            return [int(r.getMessage().split()[0]) for r in caplog.records
                    if r.name.startswith("aiokafka")
                    and "more like this in the last" in r.getMessage()]

        await until(lambda: max(counted(), default=0) > 10, 20, "a line counting the repeats")
        assert kafka_state(started) is PluginState.ERROR
        await asyncio.to_thread(own_kafka.start)
        await until(lambda: kafka_state(started) is PluginState.OK, 30, "kafka OK again")
    finally:
        for logger in library:
            logger.removeFilter(asked)
    plugin_lines = [r.getMessage() for r in caplog.records if r.name == "sidecar.statuscheck"
                    and "plugin kafka" in r.getMessage()]
    assert len(plugin_lines) == 2, plugin_lines  # ERROR once, recovered once
    assert "is ERROR" in plugin_lines[0] and "recovered" in plugin_lines[1]


@pytest.mark.parametrize("started", [("own_kafka", "")], indirect=True)
async def test_no_sync_published_message_is_lost_when_the_broker_is_killed(
        started: Sidecar, own_kafka: KafkaBroker) -> None:
    kafka = started.kafka
    assert kafka is not None
    await asyncio.wait_for(kafka.wait_connected(), 20)
    await until(lambda: kafka_state(started) is PluginState.OK, 10, "kafka OK")
    topic = unique("ledger")
    conn = kafka.new_bytes_connection("ledger")
    publisher = conn.new_sync_publisher_to_partition(topic, 0)
    await publisher.put(None, "first")  # the topic exists before the watcher joins
    watched: set[bytes] = set()
    await conn.consume_topic(lambda m: watched.add(m.value or b""), topic)
    acked: list[str] = []
    failures: list[str] = []

    async def publish_forever() -> None:
        number = 0
        while True:
            value = f"n{number}"
            try:
                await publisher.put(None, value)
            except PublishError as exc:
                failures.append(str(exc))
                await asyncio.sleep(0.1)  # the caller retries the same message
                continue
            acked.append(value)
            number += 1

    task = asyncio.create_task(publish_forever(), name="test-publisher")
    try:
        await until(lambda: len(acked) >= 50, 20, "50 messages acknowledged")
        await asyncio.to_thread(own_kafka.kill)
        await until(lambda: kafka_state(started) is PluginState.ERROR, 15, "kafka ERROR")
        assert started.statuscheck.agent_status().state is PluginState.ERROR
        during = len(acked)
        await asyncio.to_thread(own_kafka.start)
        await until(lambda: kafka_state(started) is PluginState.OK, 30, "kafka OK again")
        await until(lambda: len(acked) >= during + 50, 30, "publishing resumed")
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert failures, "the outage was never noticed by the publisher"

    stored: list[bytes] = []
    reader = PartitionConsumer(client_config(own_kafka), topic, 0, OFFSET_OLDEST,
                               lambda m: stored.append(m.value or b""))
    await reader.start()
    try:
        wanted = {v.encode() for v in acked}
        await until(lambda: wanted <= set(stored), 30, "every acknowledged message read back")
    finally:
        await reader.stop()
    # The topic watcher lived through the outage too: it saw every acknowledged message.
    await until(lambda: wanted <= watched, 30, "the watcher caught up after the restart")


async def test_stop_with_the_broker_killed_under_a_topic_watcher_closes_every_plugin(
        own_kafka: KafkaBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # aiokafka's consumer.stop() re-raised the cancellation of a fetch it had cancelled in
    # its retry backoff: agent.stop() ended in CancelledError, the later closes skipped.
    sidecar = build(Options(config_dir=str(write_config(tmp_path, own_kafka)),
                            microservice_label=unique("agent"), env={}))
    kafka = sidecar.kafka
    assert kafka is not None
    agent = sidecar.agent()
    closed: list[str] = []

    def recorded(plugin: Any) -> Callable[[], Awaitable[None]]:
        close = plugin.close

        async def close_and_record() -> None:
            await close()
            closed.append(plugin.name)

        return close_and_record

    for plugin in agent.plugins:
        monkeypatch.setattr(plugin, "close", recorded(plugin))
    await agent.start()
    try:
        await asyncio.wait_for(kafka.wait_connected(), 20)
        topic = unique("watched")
        conn = kafka.new_bytes_connection("watcher")
        seen: list[BytesMessage] = []
        await conn.consume_topic(seen.append, topic)
        await conn.new_sync_publisher(topic).put(None, "hello")
        await until(lambda: seen, 30, "the watcher reading a message")
        await asyncio.to_thread(own_kafka.kill)
        await until(lambda: kafka_state(sidecar) is PluginState.ERROR, 20, "kafka ERROR")
    finally:
        await agent.stop()  # the stop under test; also the clean-up if the above failed
    assert closed == [plugin.name for plugin in reversed(agent.plugins)]


# -- status events ---------------------------------------------------------------------


async def read_records(broker: KafkaBroker, topic: str, count: int) -> list[dict[str, Any]]:
    records: list[ConsumerMessage] = []
    reader = PartitionConsumer(client_config(broker), topic, 0, OFFSET_OLDEST, records.append)
    await reader.start()
    try:
        await until(lambda: len(records) >= count, 20, f"{count} status records")
    finally:
        await reader.stop()
    return [json.loads(r.value or b"") | {"_key": r.key} for r in records]


STATUS_TOPIC = unique("status")


@pytest.mark.parametrize("started", [("kafka_broker", f"status-topic: {STATUS_TOPIC}\n")],
                         indirect=True)
async def test_status_events_topic_receives_state_changes_and_program_events(
        started: Sidecar, kafka_broker: KafkaBroker) -> None:
    kafka, label = started.kafka, started.servicelabel.agent_label()
    assert kafka is not None and kafka.events is not None
    await until(lambda: started.statuscheck.agent_status().state is PluginState.OK, 20,
                "agent OK")
    started.statuscheck.register("demo")  # INIT: the agent goes back to INIT
    started.statuscheck.report_state_change("demo", PluginState.ERROR, "disk full")
    kafka.publish_event({"program": "web", "state": "running", "event": "started", "pid": 42})
    started.statuscheck.report_state_change("demo", PluginState.OK)
    events = kafka.events
    await until(lambda: events.sent >= 6, 20, "six status records written")

    records = await read_records(kafka_broker, STATUS_TOPIC, 6)
    assert all(r["agent"] == label and r["_key"] == label.encode() for r in records)
    # One sidecar run numbers its records 1, 2, ... so consumers can drop repeats.
    assert {r["instance"] for r in records} == {events.instance}
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5, 6]
    states = [(r["type"], r.get("previous_state"), r.get("state")) for r in records]
    assert states == [
        ("agent-state", None, 0),   # written at start: INIT
        ("agent-state", 0, 1),      # all plugins up: OK
        ("agent-state", 1, 0),      # "demo" registered, INIT
        ("agent-state", 0, 2),      # "demo" failed
        ("program", None, "running"),
        ("agent-state", 2, 1),      # "demo" recovered
    ]
    failed = records[3]
    assert failed["plugins"]["demo"] == {"state": 2, "last_change": failed["plugins"]["demo"][
        "last_change"], "last_update": failed["plugins"]["demo"]["last_update"],
        "error": "disk full"}
    assert failed["plugins"]["kafka"]["state"] == 1
    program = records[4]
    assert (program["program"], program["event"], program["pid"]) == ("web", "started", 42)
    assert isinstance(program["time"], float)

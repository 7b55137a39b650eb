"""A real single-node Apache Kafka broker (KRaft) for tests.

The jars come from ``scripts/provision/kafka.sh`` (Maven Central), cached in
``$CNINFRA_CACHE/kafka-<version>/libs``. The broker runs in one JVM as both
controller and broker, on free 127.0.0.1 ports, with its data in a temp dir.

    broker = KafkaBroker(properties={"message.max.bytes": 2_000_000})
    broker.start()
    ... use broker.bootstrap ...
    broker.restart()   # same ports, same data
    broker.close()     # kill it and delete the data
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from ._process import ServerProcess, wait_ready
from ._server import ManagedServer
from ._util import cache_dir, free_ports

__all__ = ["KafkaBroker", "find_kafka_libs"]

STARTED_LINE = "Kafka Server started"


def _version_key(path: Path) -> tuple[int, ...]:
    # "kafka-4.4.0" -> (4, 4, 0); used to pick the newest cached release.
    nums = re.findall(r"\d+", path.name)
    return tuple(int(n) for n in nums)


def find_kafka_libs() -> Path:
    """The libs dir of the newest complete Kafka download.

    ``CNINFRA_KAFKA_LIBS`` overrides the lookup. Raises FileNotFoundError with
    the fix when nothing is provisioned, so a test fails with a clear reason.
    """
    env = os.environ.get("CNINFRA_KAFKA_LIBS")
    if env:
        libs = Path(env)
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise FileNotFoundError(f"CNINFRA_KAFKA_LIBS={env} holds no kafka_2.13 jar")
        return libs
    # kafka.sh writes .complete only after all jars are in place.
    candidates = [
        d
        for d in cache_dir().glob("kafka-*")
        if (d / ".complete").is_file() and (d / "libs").is_dir()
    ]
    if not candidates:
        raise FileNotFoundError(
            f"no Kafka jars under {cache_dir()}: run scripts/provision/kafka.sh (or make test)"
        )
    return max(candidates, key=_version_key) / "libs"


def _random_cluster_id() -> str:
    # Kafka's Uuid.toString(): 16 random bytes, URL-safe base64 without padding.
    # Made here rather than with `StorageTool random-uuid` to save a JVM start.
    # Like Kafka's Uuid.randomUuid(), never one starting with "-": the StorageTool's
    # argument parser would take it for an option ("--cluster-id: expected one argument").
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def _api_versions_ok(port: int, timeout: float = 2.0) -> bool:
    """True when the broker answers an ApiVersions (v0) request on ``port``.

    A bare TCP connect is not enough: the kernel accepts connections before
    Kafka's acceptor threads run, and the broker only answers once it serves.
    """
    client_id = b"cninfra-probe"
    correlation_id = 7
    # Request header v1: api_key=18 (ApiVersions), api_version=0,
    # correlation_id, client_id (int16 length + bytes); v0 has no body.
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(struct.pack(">i", len(body)) + body)
            head = _recv_exact(s, 10)  # size, correlation_id, error_code
    except OSError:
        return False
    if head is None:
        return False
    _size, corr, error_code = struct.unpack(">iih", head)
    return bool(corr == correlation_id and error_code == 0)


def _recv_exact(s: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


class KafkaBroker(ManagedServer):
    """One Kafka process acting as KRaft controller and broker.

    ``properties`` are server properties layered over the test defaults (for
    example ``{"message.max.bytes": 5_000_000}``); they are written anew on
    every start, so changing ``broker.properties`` and calling ``restart()``
    applies them.
    """

    what = "Kafka"

    # Defaults for a fast, single-node test broker. Replication factors must be
    # 1 with one node; one partition for internal topics makes the first
    # consumer group (and transaction) much faster to set up.
    DEFAULTS: ClassVar[dict[str, str]] = {
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        # After a kill the controller refuses the broker's new registration
        # until the old one's session expires (9 s by default); a short
        # session with frequent heartbeats keeps restart(hard=True) quick.
        "broker.heartbeat.interval.ms": "500",
        "broker.session.timeout.ms": "4000",
    }

    def __init__(
        self,
        properties: Mapping[str, object] | None = None,
        *,
        libs_dir: str | os.PathLike[str] | None = None,
        java: str | None = None,
        heap: str = "512m",
        startup_timeout: float = 60.0,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.libs_dir = Path(libs_dir) if libs_dir else find_kafka_libs()
        java_home = os.environ.get("JAVA_HOME")
        default_java = str(Path(java_home) / "bin" / "java") if java_home else "java"
        self.java = java or shutil.which(default_java) or default_java
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.properties: dict[str, str] = {k: str(v) for k, v in (properties or {}).items()}
        # Ports are chosen once, so that restart() keeps them (a first start that finds
        # one taken picks new ones).
        self.port, self.controller_port = free_ports(2)
        super().__init__(workdir, "cninfra-kafka-")
        self.data_dir = self.workdir / "data"
        self.log_file = self.workdir / "server.log"
        self.stdout_file = self.workdir / "stdout.log"
        self.cluster_id = _random_cluster_id()
        self._formatted = False
        self._process = ServerProcess("Kafka", self.stdout_file, other_logs=(self.log_file,))

    # -- public API ---------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients' bootstrap.servers."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def ports(self) -> dict[str, int]:
        return {"client": self.port, "controller": self.controller_port}

    def _repick(self) -> None:
        # The storage holds no ports (the quorum's voters come from the config).
        self.port, self.controller_port = free_ports(2)

    def _start_once(self) -> None:
        # Formatting the storage the first time; ready when it answers requests.
        props_file = self._write_config()
        if not self._formatted:
            self._format(props_file)
            self._formatted = True
        self._process.start([*self._java_cmd(), "kafka.Kafka", str(props_file)],
                            cwd=self.workdir)
        try:
            self._wait_ready()
        except BaseException:
            self._process.kill()
            raise

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful shutdown (SIGTERM), waiting for the process to exit; falls
        back to SIGKILL after ``timeout`` seconds. Data is kept."""
        self._process.stop(timeout)

    def kill(self) -> None:
        """Crash the broker (SIGKILL). Data is kept; start() recovers it."""
        self._process.kill()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and requests get no answer, until ``thaw``."""
        assert self._process.popen is not None
        self._process.popen.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process.popen is not None
        self._process.popen.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the JVM's stdout/stderr and of the server log."""
        return self._process.log_tail(lines)

    # -- internals ------------------------------------------------------------

    def _java_cmd(self) -> list[str]:
        return [
            self.java,
            f"-Xmx{self.heap}",
            # A small, single-node test broker: the serial GC and C1-only JIT
            # start faster and use less CPU than the server defaults.
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs_dir}/*",
        ]

    def _write_config(self) -> Path:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # A static one-voter quorum: no dynamic-quorum bootstrap step.
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            **self.DEFAULTS,
            **self.properties,
        }
        path = self.workdir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        # Log4j 2 (the binding kafka.sh fetches) to a file in the work dir: the
        # readiness check and failure messages read it.
        (self.workdir / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {self.log_file}\n"
            "appender.file.append = true\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
        )
        return path

    def _format(self, props_file: Path) -> None:
        # KRaft refuses to start on an unformatted log dir: write
        # meta.properties and the bootstrap metadata with the StorageTool.
        cmd = [
            *self._java_cmd(),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id,
            "--config",
            str(props_file),
            "--ignore-formatted",
        ]
        res = subprocess.run(
            cmd,
            check=False,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
        )
        if res.returncode != 0:
            raise RuntimeError(
                "Kafka StorageTool format failed:\n"
                + res.stdout.decode(errors="replace")
                + res.stderr.decode(errors="replace")
            )

    def _wait_ready(self) -> None:
        started = False

        def ready() -> bool | str:
            nonlocal started
            # The log line says startup finished (this run's: output() starts at this
            # run's offset); the ApiVersions answer proves the client listener serves.
            started = started or STARTED_LINE in self._process.output()
            if not started:
                return f"no {STARTED_LINE!r} line yet"
            return _api_versions_ok(self.port) or "no ApiVersions answer yet"

        wait_ready(f"Kafka on {self.bootstrap} ready", ready, self.startup_timeout,
                   self._process)

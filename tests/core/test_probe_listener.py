"""The probe listener (``probe-endpoint``/``--probe-port``): its own port and thread, the
probe plugin's answers, a small HTTP/1.1 with limits."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.agent import Agent
from sidecar.builder import Options, Sidecar, build
from sidecar.config import ConfigError
from sidecar.health.statuscheck import PluginState
from sidecar.rest import HTTPConfig, ProbeAnswer, RestPlugin
from tests._wait import until
from tests.servers._util import free_port


@dataclass
class Running:
    sidecar: Sidecar
    agent: Agent

    @property
    def probe_port(self) -> int:
        port = self.sidecar.rest.probe_port
        assert port is not None
        return port


@pytest.fixture
async def running(config_dir: Path) -> AsyncIterator[Running]:
    (config_dir / "http.conf").write_text(
        "endpoint: 127.0.0.1:0\nprobe-endpoint: 127.0.0.1:0\nprobe-stall-limit: 300ms\n")
    sidecar = build(Options(config_dir=str(config_dir), env={}))
    agent = sidecar.agent()
    await agent.start()
    yield Running(sidecar, agent)
    await agent.stop()


def exchange(port: int, data: bytes, *, until_closed: bool = True) -> bytes:
    """Send ``data`` on a new connection; what comes back until the server closes (or,
    with ``until_closed=False``, what one read brings)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
            if not until_closed:
                break
    return b"".join(chunks)


def split(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip()
               for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


def get(port: int, path: str, extra: str = "") -> tuple[int, dict[str, str], bytes]:
    return split(exchange(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}"
                                f"Connection: close\r\n\r\n".encode()))


async def test_the_probes_answer_on_their_own_port(running: Running) -> None:
    port = running.probe_port
    assert port != running.sidecar.rest.port
    for path in ("/liveness", "/readiness", "/readiness?verbose=1"):
        status, headers, body = await asyncio.to_thread(get, port, path)
        assert status == 200
        assert headers["content-type"] == "application/json"
        assert int(headers["content-length"]) == len(body)
        assert "server" not in headers and "date" in headers
        assert json.loads(body)["state"] == PluginState.OK
    # The same bytes as on the REST port (which still serves the probes).
    status, _, body = await asyncio.to_thread(get, running.sidecar.rest.port, "/readiness")
    _, _, apart = await asyncio.to_thread(get, port, "/readiness")
    assert status == 200 and body == apart


async def test_the_listener_serves_every_health_group(running: Running) -> None:
    statuscheck = running.sidecar.statuscheck
    statuscheck.register("etcd", groups=())  # only reports: no probe counts it
    statuscheck.report_state_change("etcd", PluginState.ERROR, "etcd unreachable")
    port = running.probe_port
    readiness = await asyncio.to_thread(get, port, "/readiness")
    assert readiness[0] == 200
    assert json.loads(readiness[2])["group"]["left_out"] == ["etcd"]
    assert (await asyncio.to_thread(get, port, "/health/readiness"))[2] == readiness[2]
    liveness = await asyncio.to_thread(get, port, "/health/liveness")
    assert (liveness[0], json.loads(liveness[2])["group"]["name"]) == (200, "liveness")
    assert (await asyncio.to_thread(get, port, "/health/nope"))[0] == 404


async def test_a_state_change_shows_at_once(running: Running) -> None:
    statuscheck = running.sidecar.statuscheck
    statuscheck.register("db")
    statuscheck.report_state_change("db", PluginState.ERROR, "disk full")
    status, _, body = await asyncio.to_thread(get, running.probe_port, "/readiness")
    assert status == 503
    assert json.loads(body)["plugins"]["db"]["error"] == "disk full"
    assert (await asyncio.to_thread(get, running.probe_port, "/liveness"))[0] == 503
    statuscheck.report_state_change("db", PluginState.OK)
    assert (await asyncio.to_thread(get, running.probe_port, "/readiness"))[0] == 200


async def test_last_update_refreshes_without_a_change(running: Running) -> None:
    """A refresh of last_update (no change announced) reaches the listener within REFRESH."""
    first = json.loads((await asyncio.to_thread(get, running.probe_port, "/readiness"))[2])
    running.sidecar.statuscheck.confirm()
    revision = running.sidecar.statuscheck.revision

    def refreshed() -> bool:
        get(running.probe_port, "/readiness")  # answered by the listener's own thread
        return running.sidecar.probe._revision == revision  # rendered in the loop

    await until(refreshed, 5, "the new revision rendered")
    assert first["state"] == PluginState.OK


async def test_keep_alive_pipelining_and_http_1_0(running: Running) -> None:
    port = running.probe_port
    # The same path twice: the HEAD's length is that of the GET (each group's body differs).
    two = b"GET /readiness HTTP/1.1\r\nHost: x\r\n\r\nHEAD /readiness HTTP/1.1\r\nHost: x\r\n" \
          b"Connection: close\r\n\r\n"
    reply = await asyncio.to_thread(exchange, port, two)
    first, _, rest = reply.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK")
    length = int(next(line.split(b":")[1] for line in first.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    second = rest[length:]
    status, headers, body = split(second)
    assert status == 200 and body == b"" and int(headers["content-length"]) == length
    assert headers["connection"] == "close"
    # HTTP/1.0 closes after the answer unless asked to keep the connection.
    reply = await asyncio.to_thread(exchange, port, b"GET /liveness HTTP/1.0\r\n\r\n")
    assert split(reply)[0] == 200 and split(reply)[1]["connection"] == "close"


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"POST /liveness HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
    (b"PUT /liveness HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 413),
    (b"GET /liveness HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 413),
    (b"GET /liveness HTTP/2.0\r\n\r\n", 505),
    (b"GET /liveness\r\n\r\n", 400),
    (b"GET /liveness HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET /liveness HTTP/1.1\r\nX: " + b"a" * 9000, 431),  # never ends: still 431
])
async def test_what_it_refuses(running: Running, request_bytes: bytes, status: int) -> None:
    reply = await asyncio.to_thread(exchange, running.probe_port, request_bytes,
                                    until_closed=status != 404 and status != 405)
    got, headers, body = split(reply)
    assert got == status
    assert "error" in json.loads(body)
    if status == 405:
        assert headers["allow"] == "GET, HEAD"


async def test_a_stalled_event_loop_fails_both_probes(running: Running) -> None:
    """A handler that blocks the event loop would time out a probe served by that loop; the
    listener answers 503 instead, once the loop has not turned for probe-stall-limit."""
    port = running.probe_port
    time.sleep(0.8)  # block this (the sidecar's) event loop past the 300 ms stall limit
    status, _, body = get(port, "/liveness")  # answered by the listener's own thread
    assert status == 503
    document = json.loads(body)
    assert document["state"] == PluginState.ERROR
    assert "event loop has not turned" in document["error"]
    await until(lambda: get(port, "/liveness")[0] == 200, 5, "the probes answering 200 again")
    assert running.sidecar.rest.stats.probes is not None
    assert running.sidecar.rest.stats.probes.stalls == 1


async def test_at_the_limit_silent_connections_are_closed_and_requests_get_in(
        config_dir: Path) -> None:
    rest = RestPlugin(HTTPConfig(endpoint="127.0.0.1:0", probe_endpoint="127.0.0.1:0",
                                 probe_max_connections=4))

    class Source:
        def probe_answer(self, path: str) -> ProbeAnswer | None:
            return ProbeAnswer(200, b"{}") if path == "/liveness" else None

    rest.serve_probes(Source())
    await rest.init()
    await rest.after_init()
    port = rest.probe_port
    assert port is not None
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
    try:
        def six_closed() -> bool:
            count = 0
            for sock in silent:
                sock.setblocking(False)
                try:
                    if sock.recv(1) == b"":
                        count += 1
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    count += 1
            return count >= 6

        await until(six_closed, 5, "the silent connections over the limit closed")
        stats = rest.stats.probes
        assert stats is not None
        assert stats.listener.refused + stats.listener.evicted >= 6
        # A connection with its request waiting gets in: the oldest silent one makes room.
        evicted = stats.listener.evicted
        reply = await asyncio.to_thread(get, port, "/liveness")
        assert reply[0] == 200
        assert stats.listener.evicted == evicted + 1
    finally:
        for sock in silent:
            sock.close()
        await rest.close()


def test_probe_port_from_flag_env_and_file(config_dir: Path) -> None:
    (config_dir / "http.conf").write_text("endpoint: 127.0.0.1:9191\n")
    built = build(Options(config_dir=str(config_dir), env={"PROBE_PORT": "9300"}))
    assert built.rest.config.probe_endpoint == "127.0.0.1:9300"
    built = build(Options(config_dir=str(config_dir), probe_port="9301",
                          env={"PROBE_PORT": "9300"}))
    assert built.rest.config.probe_endpoint == "127.0.0.1:9301"
    (config_dir / "http.conf").write_text("probe-endpoint: '[::1]:9400'\n")
    assert build(Options(config_dir=str(config_dir), env={})).rest.config.probe_endpoint \
        == "[::1]:9400"
    assert build(Options(config_dir=str(config_dir), env={"PROBE_PORT": "9401"})) \
        .rest.config.probe_endpoint == "[::1]:9401"
    with pytest.raises(ConfigError, match="PROBE_PORT: invalid port 'x'"):
        build(Options(config_dir=str(config_dir), env={"PROBE_PORT": "x"}))
    (config_dir / "http.conf").write_text("probe-endpoint: nowhere\n")
    with pytest.raises(ConfigError, match="probe-endpoint"):
        build(Options(config_dir=str(config_dir), env={}))


async def test_a_taken_probe_port_fails_the_start(config_dir: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    rest = RestPlugin(HTTPConfig(endpoint=f"127.0.0.1:{free_port()}",
                                 probe_endpoint=f"127.0.0.1:{port}"))
    rest.serve_probes(type("S", (), {"probe_answer": lambda self, p: None})())
    try:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            await rest.after_init()
        assert rest.bound == []  # nothing half-started: the REST port was let go too
    finally:
        taken.close()


async def test_at_the_limit_a_request_a_moment_behind_its_connect_still_gets_in() -> None:
    rest = RestPlugin(HTTPConfig(endpoint="127.0.0.1:0", probe_endpoint="127.0.0.1:0",
                                 probe_max_connections=2))

    class Source:
        def probe_answer(self, path: str) -> ProbeAnswer | None:
            return ProbeAnswer(200, b"{}")

    rest.serve_probes(Source())
    await rest.init()
    await rest.after_init()
    port = rest.probe_port
    assert port is not None and rest.stats.probes is not None
    listener = rest.stats.probes.listener
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]

    def late(delay: float) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            time.sleep(delay)  # the request comes after the connection was accepted
            try:
                sock.sendall(b"GET /liveness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return sock.recv(4096)
            except OSError:
                return b""

    try:
        await until(lambda: listener.open == 2, 5, "the limit reached")
        assert (await asyncio.to_thread(late, 0.02)).startswith(b"HTTP/1.1 200")
        accepted = listener.accepted
        silent.append(socket.create_connection(("127.0.0.1", port)))  # at the limit again
        await until(lambda: listener.accepted > accepted and listener.open == 2, 5,
                    "the limit reached again")
        assert await asyncio.to_thread(late, 0.5) == b""  # silent too long: closed
        assert listener.refused >= 1
    finally:
        for sock in silent:
            sock.close()
        await rest.close()

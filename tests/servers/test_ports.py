"""A test server whose port another process took between picking and binding it starts on
new ports; a restart keeps its ports and says which one is taken."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.servers import etcd as etcd_module
from tests.servers._server import PORT_ATTEMPTS, PortsTaken
from tests.servers._util import free_ports
from tests.servers.etcd import EtcdServer
from tests.servers.kafka import KafkaBroker, _api_versions_ok
from tests.servers.kube import KubeApiServer
from tests.sidecar_proc import SidecarProcess


def listen_on(stack: ExitStack, port: int) -> socket.socket:
    """What another process would do with the port: listen on it."""
    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    # As servers do: a port the server just closed has connections in TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


@pytest.fixture
def taken() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def test_etcd_starts_on_new_ports_when_its_client_port_was_taken(taken: ExitStack) -> None:
    server = EtcdServer()
    first = server.client_port
    listen_on(taken, first)
    with server:
        assert server.client_port != first
        server.etcdctl("put", "/ports/k", "v")
        assert server.get("/ports/k") == "v"


def test_etcd_gives_up_naming_the_ports_after_every_attempt(
        taken: ExitStack, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every set of ports it will pick has its peer port taken.
    sets = [free_ports(3) for _ in range(PORT_ATTEMPTS)]
    for _, peer, _ in sets:
        listen_on(taken, peer)
    picks = iter(sets)
    monkeypatch.setattr(etcd_module, "free_ports", lambda count: next(picks))
    server = EtcdServer()
    began = time.monotonic()
    with pytest.raises(PortsTaken) as failed, server:
        pass
    message = str(failed.value)
    assert f"all {PORT_ATTEMPTS} attempts" in message
    for client, peer, metrics in sets:
        assert f"client {client}, peer {peer} (taken), metrics {metrics}" in message
    assert not server.running
    # Told by etcd's exit, not by a health check timing out (20 s).
    assert time.monotonic() - began < 10


def test_a_restart_keeps_the_ports_and_names_the_one_taken(taken: ExitStack) -> None:
    with EtcdServer() as server:
        server.etcdctl("put", "/ports/kept", "yes")
        server.stop()
        blocker = listen_on(taken, server.client_port)
        with pytest.raises(PortsTaken, match=f"client {server.client_port} \\(taken\\).*"
                                             "a restart keeps its ports"):
            server.start()
        assert not server.running
        blocker.close()
        server.start()
        assert server.get("/ports/kept") == "yes"


def test_kafka_starts_on_new_ports_when_its_controller_port_was_taken(taken: ExitStack) -> None:
    broker = KafkaBroker()
    first = broker.controller_port
    listen_on(taken, first)
    with broker:
        assert broker.controller_port != first
        assert _api_versions_ok(broker.port)
        # The storage formatted for the first ports serves the new ones after a restart too.
        broker.restart()
        assert _api_versions_ok(broker.port)


def test_kube_apiserver_starts_on_new_ports_when_its_port_was_taken(taken: ExitStack) -> None:
    api = KubeApiServer()
    first = api.port
    listen_on(taken, first)
    with api:
        assert api.port != first
        status, version = api.request("GET", "/version")
        assert status == 200, version
        status, _ = api.request("POST", "/api/v1/namespaces", {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ports"}})
        assert status == 201


def test_a_sidecar_whose_port_was_taken_starts_on_another(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    with ExitStack() as stack:
        sidecar = SidecarProcess(config)
        taken = sidecar.port
        listen_on(stack, taken)
        sidecar.start()
        try:
            assert sidecar.port != taken
            assert sidecar.get("/liveness")[0] == 200
        finally:
            assert sidecar.stop() == 0

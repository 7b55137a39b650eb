"""Fixtures: real servers on loopback, and a check that no test leaves tasks behind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.servers.etcd import EtcdServer
from tests.servers.kafka import KafkaBroker
from tests.servers.kube import KubeApiServer
from tests.servers.kubecluster import KubeCluster, provisioned_images
from tests.sidecar_proc import SidecarProcess


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """One etcd shared by the session; tests keep apart by using their own labels/prefixes."""
    with EtcdServer() as server:
        yield server


@pytest.fixture(scope="session")
def kube_apiserver() -> Iterator[KubeApiServer]:
    """One kube-apiserver (with its own etcd) for the session; tests keep apart
    by using namespaces of their own."""
    with KubeApiServer() as api:
        yield api


@pytest.fixture(scope="session")
def _kube_cluster() -> Iterator[KubeCluster]:
    with KubeCluster(provisioned_images()) as cluster:
        yield cluster


@pytest.fixture
def kube_cluster(_kube_cluster: KubeCluster) -> KubeCluster:
    """The single-node Kubernetes (one per machine, so one per session), started if a
    test stopped it; tests keep apart by namespaces of their own. Its images are
    those of the current code: scripts/provision/images.sh rebuilds the sidecar's
    when its sources changed."""
    return _kube_cluster.start()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the real cluster run last: its control plane and kubelet, up
    from the first of them to the end of the session, then never share the two
    cores with the other tests."""
    items.sort(key=lambda item: "kube_cluster" in getattr(item, "fixturenames", ()))


@pytest.fixture
def own_etcd() -> Iterator[EtcdServer]:
    """An etcd of this test's own, for tests that stop, kill or restart it."""
    with EtcdServer() as server:
        yield server


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    return directory


@pytest.fixture
def sidecars() -> Iterator[list[SidecarProcess]]:
    """Collects sidecar processes started by a test and ends them afterwards."""
    started: list[SidecarProcess] = []
    yield started
    for proc in started:
        proc.kill()


@pytest.fixture(autouse=True)
async def no_leftover_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running (a leaked background loop)."""
    yield
    current = asyncio.current_task()
    # Tasks finishing their cancellation (a socket's close, on a busy machine) get up to
    # 1 s; a leaked background loop never ends, so it is still caught.
    deadline = asyncio.get_running_loop().time() + 1.0
    while True:
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        if not pending:
            return
        if asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.01)
    names = ", ".join(sorted(t.get_name() for t in pending))
    for task in pending:
        task.cancel()
    pytest.fail(f"test left asyncio tasks running: {names}")


@pytest.fixture
def own_kafka() -> Iterator[KafkaBroker]:
    """A Kafka broker of this test's own, for tests that kill or restart it."""
    with KafkaBroker() as broker:
        yield broker


@pytest.fixture
def own_kube_apiserver() -> Iterator[KubeApiServer]:
    """A kube-apiserver of this test's own, for tests that stop and restart it."""
    with KubeApiServer() as api:
        yield api

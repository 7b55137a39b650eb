"""Fixtures of the fault-injection tests: servers of each test's own (they get killed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.kafka import KafkaBroker
from tests.servers.kube import KubeApiServer


@pytest.fixture
def own_broker() -> Iterator[KafkaBroker]:
    """A Kafka broker of this test's own, for killing and restarting."""
    broker = KafkaBroker()
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


@pytest.fixture
def own_apiserver() -> Iterator[KubeApiServer]:
    """A kube-apiserver of this test's own, for stopping and starting."""
    api = KubeApiServer()
    try:
        api.start()
        yield api
    finally:
        api.close()

"""Fixtures: a real Apache Kafka broker (KRaft, single node) on loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from sidecar.messaging.kafka import ClientConfig, Multiplexer
from tests.servers.kafka import KafkaBroker

#: The shared broker's size limit: a bigger message exercises the error callback.
MAX_MESSAGE_BYTES = 100_000


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[KafkaBroker]:
    """One broker for the session; tests keep apart with their own topics and groups."""
    broker = KafkaBroker(properties={"message.max.bytes": MAX_MESSAGE_BYTES})
    try:
        broker.start()
        yield broker
    finally:
        broker.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def client_config(broker: KafkaBroker, **overrides: Any) -> ClientConfig:
    settings: dict[str, Any] = {"addrs": (broker.bootstrap,), "request_timeout": 10.0,
                                "commit_interval": 0.2, "session_timeout": 6.0}
    settings.update(overrides)
    return ClientConfig(**settings)


@pytest.fixture
async def mux_factory(kafka_broker: KafkaBroker) -> AsyncIterator[Callable[..., Multiplexer]]:
    """Makes multiplexers on the shared broker (each with a fresh group) and closes them."""
    made: list[Multiplexer] = []

    def make(group: str | None = None, broker: KafkaBroker | None = None,
             **overrides: Any) -> Multiplexer:
        mux = Multiplexer(client_config(broker or kafka_broker, **overrides),
                          group or unique("group"))
        made.append(mux)
        return mux

    yield make
    for mux in made:
        await mux.close()



"""``kafka.conf``; no file means the Kafka plugin is disabled.

    addrs: ["kafka-0.kafka:9092", "kafka-1.kafka:9092"]
    group_id: orders            # default: the service label
    tls: {ca-file: /etc/kafka/ca.pem}
    sasl: {mechanism: SCRAM-SHA-512, username: agent, password-file: /etc/kafka/password}
    status-topic: cninfra-status
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from sidecar.config import DURATION

from .client.config import (
    ClientConfig,
    InitialOffset,
    PartitionerName,
    RequiredAcks,
    SASLConfig,
    TLSConfig,
)


@dataclass(frozen=True)
class KafkaConfig:
    #: Bootstrap brokers, ``host:port``.
    addrs: list[str] = field(default_factory=lambda: ["127.0.0.1:9092"])
    #: Consumer group of the topic watchers; default: the service label.
    group_id: str | None = field(default=None, metadata={"key": "group_id"})
    #: Client id shown to the brokers; default: the service label.
    client_id: str | None = None
    #: TLS towards the brokers (on when the section is present).
    tls: TLSConfig | None = None
    #: SASL authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512).
    sasl: SASLConfig | None = None
    #: Which replicas confirm a message before it counts as sent: ``all`` in-sync
    #: replicas, the partition's ``leader``, or ``none``.
    required_acks: RequiredAcks = "all"
    #: ``hash`` (by key, as sarama and cn-infra), ``murmur2`` (by key, as the Java
    #: client), ``random``, or ``manual`` (publishers name the partition).
    partitioner: PartitionerName = "hash"
    #: Exactly-once delivery per partition for retried sends (needs ``required-acks: all``).
    idempotent: bool = False
    #: Where a group without a committed offset starts: ``oldest`` loses nothing.
    initial_offset: InitialOffset = "oldest"
    #: How long the brokers have to confirm a message (and to answer any request).
    request_timeout: Annotated[float, DURATION] = 30.0
    #: How long the async producer waits to fill a batch.
    linger: Annotated[float, DURATION] = 0.005
    #: Largest message (key, value and headers) a producer accepts.
    max_message_bytes: int = 1_048_576
    #: Messages the async producer holds unconfirmed before it refuses more.
    max_pending: int = 100_000
    #: A consumer group member silent for this long is replaced.
    session_timeout: Annotated[float, DURATION] = 10.0
    #: How often marked offsets are committed.
    commit_interval: Annotated[float, DURATION] = 1.0
    #: Keys per watcher remembered for ``prev_value`` (0: no previous values).
    prev_value_keys: int = 10_000
    #: Longest wait between attempts to reach the brokers at start-up.
    reconnect_interval: Annotated[float, DURATION] = 5.0
    #: How often the clients ask for fresh cluster metadata (leaders of partitions)
    #: even without an error: a consumer reading from a leader that was cut off from
    #: the cluster, but that it still reaches, moves to the new leader only then.
    metadata_max_age: Annotated[float, DURATION] = 300.0
    #: Write every change of the agent's state, and supervisor program events, as
    #: JSON records to this topic (keyed by the service label). Unset: off.
    status_topic: str | None = None
    #: Status records kept while Kafka is unreachable; the oldest are dropped beyond.
    status_backlog: int = 1000

    def __post_init__(self) -> None:
        self.client_config("check")  # the client's own checks, with their messages
        if self.group_id == "":
            raise ValueError("group_id must not be empty (leave it out for the service label)")
        if self.prev_value_keys < 0:
            raise ValueError("prev-value-keys must not be negative")
        if self.reconnect_interval <= 0:
            raise ValueError("reconnect-interval must be greater than zero")
        if self.status_topic == "":
            raise ValueError("status-topic must not be empty (leave it out to disable)")
        if self.status_backlog < 1:
            raise ValueError("status-backlog must be at least 1")

    def client_config(self, label: str) -> ClientConfig:
        return ClientConfig(
            addrs=tuple(self.addrs), client_id=self.client_id or label, tls=self.tls,
            sasl=self.sasl, required_acks=self.required_acks, partitioner=self.partitioner,
            idempotent=self.idempotent, request_timeout=self.request_timeout,
            linger=self.linger, max_message_bytes=self.max_message_bytes,
            max_pending=self.max_pending, initial_offset=self.initial_offset,
            session_timeout=self.session_timeout, commit_interval=self.commit_interval,
            metadata_max_age=self.metadata_max_age)

"""Connection and delivery options of the Kafka client (TLS, SASL, acks, partitioner)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from sidecar.config import DURATION

#: How many replicas must have a message before the broker confirms it:
#: ``none`` (fire and forget), ``leader`` (the partition leader), ``all`` (every in-sync replica).
RequiredAcks = Literal["none", "leader", "all"]
ACKS_VALUES: dict[str, int | str] = {"none": 0, "leader": 1, "all": "all"}

#: Where a message goes when the publisher names no partition:
#: ``hash`` (by key, exactly as sarama's default hash partitioner, FNV-1a, places
#: it: the partition cn-infra's Go agents choose for the same key), ``murmur2``
#: (by key, as the Java client places it),
#: ``random``, or ``manual`` (every message must name its partition). With
#: ``hash`` and ``murmur2`` a message without a key goes to a random partition.
#: See ``partitioners.py`` for the exact arithmetic.
PartitionerName = Literal["hash", "murmur2", "random", "manual"]

#: Where a consumer group that has no committed offset starts reading.
InitialOffset = Literal["oldest", "newest"]

SASLMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@dataclass(frozen=True)
class TLSConfig:
    """TLS towards the brokers; its presence turns TLS on (unless ``enabled: false``)."""

    #: cn-infra's switch, kept so that its kafka.conf files load unchanged.
    enabled: bool = True
    #: CA bundle that signed the brokers' certificates (default: the system's CAs).
    ca_file: str | None = None
    #: Client certificate, for brokers that require client authentication (with ``key-file``).
    cert_file: str | None = None
    #: The client certificate's private key.
    key_file: str | None = None
    #: Do not verify the brokers' certificates (tests only: anyone can impersonate them).
    insecure_skip_verify: bool = False

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("tls.cert-file and tls.key-file must be set together")

    def ssl_context(self) -> ssl.SSLContext:
        """The client-side context; a missing or bad file raises ValueError naming it."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        try:
            if self.ca_file:
                context.load_verify_locations(cafile=self.ca_file)
            if self.cert_file and self.key_file:
                context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            files = ", ".join(f for f in (self.ca_file, self.cert_file, self.key_file) if f)
            raise ValueError(f"tls: cannot load {files}: {exc}") from exc
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True)
class SASLConfig:
    """SASL authentication (over TLS when ``tls`` is set, else in plain text)."""

    #: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    mechanism: SASLMechanism = "PLAIN"
    #: Required.
    username: str = ""
    #: The password; or ``password-file``, not both.
    password: str | None = None
    #: Read the password from this file (a mounted Kubernetes Secret) instead.
    password_file: str | None = None

    def __post_init__(self) -> None:
        if not self.username:
            raise ValueError("sasl.username is required")
        if (self.password is None) == (self.password_file is None):
            raise ValueError("sasl: set exactly one of password and password-file")

    def resolve_password(self) -> str:
        if self.password is not None:
            return self.password
        assert self.password_file is not None
        try:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"sasl.password-file {self.password_file}: "
                             f"{exc.strerror or exc}") from exc


@dataclass(frozen=True)
class ClientConfig:
    """Everything the producers and consumers need to reach the brokers and deliver."""

    #: Bootstrap brokers, ``host:port``; the rest of the cluster is learnt from them.
    addrs: tuple[str, ...] = ("127.0.0.1:9092",)
    #: Shown in the brokers' logs and quotas.
    client_id: str = "cninfra-sidecar"
    tls: TLSConfig | None = None
    sasl: SASLConfig | None = None
    required_acks: RequiredAcks = "all"
    partitioner: PartitionerName = "hash"
    #: Exactly-once delivery per partition for retried sends (needs ``required_acks: all``).
    idempotent: bool = False
    #: How long the brokers have to confirm a message (and to answer any request).
    request_timeout: Annotated[float, DURATION] = 30.0
    #: How long the async producer waits to fill a batch; the sync producer never waits.
    linger: Annotated[float, DURATION] = 0.005
    #: Largest message (key, value and headers) a producer accepts.
    max_message_bytes: int = 1_048_576
    #: Messages an async producer holds before it refuses more (QueueFullError).
    max_pending: int = 100_000
    #: Where a consumer group without a committed offset starts.
    initial_offset: InitialOffset = "oldest"
    #: A group member silent for this long is replaced.
    session_timeout: Annotated[float, DURATION] = 10.0
    #: Marked offsets are committed this often (and on close and on rebalance).
    commit_interval: Annotated[float, DURATION] = 1.0
    metadata_max_age: Annotated[float, DURATION] = 300.0

    def __post_init__(self) -> None:
        if not self.addrs:
            raise ValueError("addrs: at least one broker address is required")
        for addr in self.addrs:
            host, sep, port = addr.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"addrs: {addr!r} is not HOST:PORT")
        if self.idempotent and self.required_acks != "all":
            raise ValueError("idempotent: true needs required-acks: all")
        for key in ("request_timeout", "linger", "session_timeout", "commit_interval",
                    "metadata_max_age"):
            if getattr(self, key) < 0 or (key != "linger" and getattr(self, key) == 0):
                raise ValueError(f"{key.replace('_', '-')} must be greater than zero")
        if self.max_message_bytes < 1024:
            raise ValueError("max-message-bytes must be at least 1024")
        if self.max_pending < 1:
            raise ValueError("max-pending must be at least 1")

    @property
    def bootstrap(self) -> str:
        return ",".join(self.addrs)

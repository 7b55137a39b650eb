"""``etcd.conf``; no file means the etcd plugin (and status publishing) is disabled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from sidecar.config import DURATION


@dataclass(frozen=True)
class EtcdTLS:
    #: CA bundle that signed the etcd servers' certificates.
    ca_file: str | None = None
    #: Client certificate, for etcd servers that require client auth (with ``key-file``).
    cert_file: str | None = None
    #: The client certificate's private key.
    key_file: str | None = None

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("tls.cert-file and tls.key-file must be set together")


@dataclass(frozen=True)
class EtcdConfig:
    #: ``host:port`` of the etcd members, tried in turn.
    endpoints: list[str] = field(default_factory=lambda: ["127.0.0.1:2379"])
    #: How long to wait for a member to answer when (re)connecting.
    dial_timeout: Annotated[float, DURATION] = 2.0
    #: Deadline of each request.
    operation_timeout: Annotated[float, DURATION] = 3.0
    #: The agent's keys expire this long after it stops refreshing its lease.
    lease_ttl: Annotated[float, DURATION] = 15.0
    #: Longest wait between reconnection attempts (never more than lease-ttl/3, so that
    #: the lease is refreshed before it can expire once etcd is back).
    reconnect_interval: Annotated[float, DURATION] = 2.0
    #: TLS; without this section the connection is plain text.
    tls: EtcdTLS | None = None
    #: etcd's own authentication (with ``password``).
    username: str | None = None
    #: The password of ``username``.
    password: str | None = None

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ValueError("endpoints: at least one etcd endpoint is required")
        for endpoint in self.endpoints:
            host, sep, port = endpoint.removeprefix("http://").rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"endpoints: {endpoint!r} is not HOST:PORT")
        if self.lease_ttl < 2:
            raise ValueError("lease-ttl must be at least 2s (etcd's minimum lease)")
        if bool(self.username) != bool(self.password):
            raise ValueError("username and password must be set together")

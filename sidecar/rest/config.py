"""``http.conf``: where and how the REST server listens, and who may change state."""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field
from typing import Annotated

from sidecar.config import DURATION

DEFAULT_PORT = 9191
LOOPBACK_CIDRS = ("127.0.0.0/8", "::1/128")


def parse_port(value: str | int, source: str) -> int:
    """A TCP port from a flag or environment variable, or a ValueError naming ``source``."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}: invalid port {value!r}: expected a number from 1 to 65535")\
            from None
    if not 1 <= port <= 65535:
        raise ValueError(f"{source}: invalid port {value!r}: expected a number from 1 to 65535")
    return port


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``"0.0.0.0:9191"`` or ``"[::]:9191"`` into host and port."""
    host, sep, port_text = endpoint.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT such as 0.0.0.0:9191, got {endpoint!r}")
    host = host.removeprefix("[").removesuffix("]")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"invalid port in {endpoint!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port out of range in {endpoint!r}")
    return host, port


@dataclass(frozen=True)
class HTTPConfig:
    """The REST server. ``--http-port``/``HTTP_PORT`` override the endpoint's port."""

    #: Address and port to listen on.
    endpoint: str = f"0.0.0.0:{DEFAULT_PORT}"
    #: Idle keep-alive connections are closed after this long.
    keepalive_timeout: Annotated[float, DURATION] = 75.0
    #: A handler that runs longer is cancelled and answered with 503.
    request_timeout: Annotated[float, DURATION] = 30.0
    #: Open connections get this long to finish at shutdown.
    shutdown_timeout: Annotated[float, DURATION] = 3.0
    #: Largest accepted request body, in bytes (413 beyond).
    max_body_size: int = 1024 * 1024
    #: PEM server certificate and key; both set turns on HTTPS.
    server_cert_file: str | None = None
    server_key_file: str | None = None
    #: Peers allowed to call admin routes without a token (X-Forwarded-For never counts).
    admin_allow: list[str] = field(default_factory=lambda: list(LOOPBACK_CIDRS))
    #: Bearer token that admits any peer to admin routes.
    admin_token: str | None = None
    #: File holding the admin token (for example a mounted Secret); read at start-up.
    admin_token_file: str | None = None

    def __post_init__(self) -> None:
        try:
            split_endpoint(self.endpoint)
        except ValueError as exc:
            raise ValueError(f"endpoint: {exc}") from None
        if self.max_body_size < 0:
            raise ValueError(f"max-body-size must not be negative, got {self.max_body_size}")
        if bool(self.server_cert_file) != bool(self.server_key_file):
            raise ValueError("server-cert-file and server-key-file must be set together")
        for cidr in self.admin_allow:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"admin-allow: {cidr!r} is not a CIDR such as 127.0.0.0/8")\
                    from None
        if self.admin_token is not None and not self.admin_token.strip():
            raise ValueError("admin-token must not be empty")

    @property
    def host(self) -> str:
        return split_endpoint(self.endpoint)[0]

    @property
    def port(self) -> int:
        return split_endpoint(self.endpoint)[1]

    def with_port(self, port: int) -> HTTPConfig:
        host = self.host
        shown = f"[{host}]" if ":" in host else host
        return _replace(self, endpoint=f"{shown}:{port}")


def _replace(config: HTTPConfig, **changes: object) -> HTTPConfig:
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]

"""``http.conf``: where and how the REST server listens, and who may change state."""

from __future__ import annotations

import dataclasses
import ipaddress
import resource
from dataclasses import dataclass, field
from typing import Annotated

from sidecar.config import DURATION

DEFAULT_PORT = 9191
#: The probe listener's port in the chart and manifests (``PROBE_PORT``).
DEFAULT_PROBE_PORT = 9192
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
    #: PEM server certificate; with ``server-key-file`` it turns on HTTPS.
    server_cert_file: str | None = None
    #: The PEM private key of ``server-cert-file``.
    server_key_file: str | None = None
    #: Peers allowed to call admin routes without a token (X-Forwarded-For never counts).
    admin_allow: list[str] = field(default_factory=lambda: list(LOOPBACK_CIDRS))
    #: Bearer token that admits any peer to admin routes.
    admin_token: str | None = None
    #: File holding the admin token (for example a mounted Secret); read at start-up.
    admin_token_file: str | None = None
    #: Most connections the REST port holds; at the limit a new one closes the longest
    #: idle one. 0: the open-files limit less what the probe listener and the rest of the
    #: sidecar may need (see :func:`connection_limit`), at most 1024.
    max_connections: int = 0
    #: A listener of its own for ``/liveness`` and ``/readiness`` (the kubelet's), such as
    #: ``0.0.0.0:9192``; ``--probe-port``/``PROBE_PORT`` set its port. Empty: none (the
    #: probes are always served on ``endpoint`` too).
    probe_endpoint: str = ""
    #: Most connections the probe listener holds (the oldest make room for new ones).
    probe_max_connections: int = 128
    #: The probe listener answers 503 when the event loop has not turned for this long.
    probe_stall_limit: Annotated[float, DURATION] = 5.0
    #: Expensive routes (``/metrics``, ``/fleet``, ``/log/list``, ...) reuse a render for
    #: this long (per URL and negotiated headers); 0: render every request.
    render_cache: Annotated[float, DURATION] = 1.0
    #: Expensive routes rendering at once; more get 503 with Retry-After.
    render_concurrency: int = 4

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
        if self.probe_endpoint:
            try:
                split_endpoint(self.probe_endpoint)
            except ValueError as exc:
                raise ValueError(f"probe-endpoint: {exc}") from None
        for key in ("max_connections", "probe_max_connections", "render_concurrency"):
            value = getattr(self, key)
            if value < 0 or (value == 0 and key != "max_connections"):
                raise ValueError(f"{key.replace('_', '-')} must be at least 1, got {value}")
        if self.probe_stall_limit <= 0:
            raise ValueError("probe-stall-limit must be greater than zero")

    @property
    def host(self) -> str:
        return split_endpoint(self.endpoint)[0]

    @property
    def port(self) -> int:
        return split_endpoint(self.endpoint)[1]

    def with_port(self, port: int) -> HTTPConfig:
        return _replace(self, endpoint=_join(self.host, port))

    def with_probe_port(self, port: int) -> HTTPConfig:
        """The probe listener on ``port``: on probe-endpoint's host if set, else endpoint's."""
        host = split_endpoint(self.probe_endpoint)[0] if self.probe_endpoint else self.host
        return _replace(self, probe_endpoint=_join(host, port))


def connection_limit(config: HTTPConfig, open_files: int | None = None) -> int:
    """The REST port's connection limit: ``max-connections``, or what the open-files limit
    leaves after the probe listener, its reserve and 120 descriptors for the rest of the
    sidecar (programs' pipes, clients, files), between 16 and 1024."""
    if config.max_connections:
        return config.max_connections
    if open_files is None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if open_files == resource.RLIM_INFINITY:
        return 1024
    headroom = 120 + (config.probe_max_connections + 8 if config.probe_endpoint else 0)
    return max(16, min(1024, open_files - headroom))


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _replace(config: HTTPConfig, **changes: object) -> HTTPConfig:
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]

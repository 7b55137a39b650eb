"""An aetcd client that can also speak TLS and fail over between endpoints."""

from __future__ import annotations

from pathlib import Path

from ._grpc import fork_handlers_off
from .config import EtcdConfig

with fork_handlers_off():  # before anything imports grpc: see _grpc
    import aetcd
    import grpc
    from aetcd import rpc, watcher

# Reconnect quickly once etcd is back, instead of gRPC's default backoff of up to 2 minutes.
_CHANNEL_OPTIONS = {
    "grpc.initial_reconnect_backoff_ms": 200,
    "grpc.min_reconnect_backoff_ms": 200,
    "grpc.max_reconnect_backoff_ms": 2000,
    "grpc.keepalive_time_ms": 10000,
    "grpc.keepalive_timeout_ms": 5000,
}


class EtcdClient(aetcd.Client):  # type: ignore[misc]
    def __init__(self, config: EtcdConfig, endpoint: str) -> None:
        host, _, port = endpoint.removeprefix("http://").removeprefix("https://").rpartition(":")
        super().__init__(
            host=host.strip("[]"),
            port=int(port),
            username=config.username,
            password=config.password,
            timeout=config.operation_timeout,
            options=dict(_CHANNEL_OPTIONS),
        )
        self._tls = config.tls

    def _credentials(self) -> grpc.ChannelCredentials:
        assert self._tls is not None
        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        credentials: grpc.ChannelCredentials = grpc.ssl_channel_credentials(
            root_certificates=read(self._tls.ca_file),
            private_key=read(self._tls.key_file),
            certificate_chain=read(self._tls.cert_file),
        )
        return credentials

    async def connect(self) -> None:
        if self._tls is None:
            await super().connect()
            return
        if self._connected.is_set():
            return
        target = f"{self._host}:{self._port}"
        self.channel = grpc.aio.secure_channel(target, self._credentials(),
                                               options=list(self._options.items()))
        if self._username and self._password:
            auth = rpc.AuthStub(self.channel)
            resp = await auth.Authenticate(
                rpc.AuthenticateRequest(name=self._username, password=self._password),
                timeout=self._timeout)
            self.metadata = (("token", resp.token),)
        self.kvstub = rpc.KVStub(self.channel)
        self.clusterstub = rpc.ClusterStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenancestub = rpc.MaintenanceStub(self.channel)
        self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout,
                                        metadata=self.metadata)
        self._connected.set()


__all__ = ["EtcdClient"]

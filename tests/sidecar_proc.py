"""Run the real ``sidecar`` command as a child process, the way a pod runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.servers._util import free_port, wait_until


class SidecarProcess:
    def __init__(self, config_dir: Path, *args: str, env: dict[str, str] | None = None,
                 port: int | None = None) -> None:
        self.config_dir = config_dir
        self.port = port or free_port()
        self.args = list(args)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.env.pop("CONFIG_DIR", None)
        # Logs go beside the test's temp files, never into a config dir from the repo.
        self.log_path = Path(tempfile.mkdtemp(prefix="sidecar-log-")) / f"sidecar-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True, timeout: float = 15.0) -> SidecarProcess:
        cmd = [sys.executable, "-m", "sidecar", "run", "--config-dir", str(self.config_dir),
               "--http-port", str(self.port), *self.args]
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=self.env,
                                     stdin=subprocess.DEVNULL)
        log.close()
        if wait:
            wait_until(self._answers, timeout, f"sidecar on port {self.port} answering")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"sidecar exited with {self.proc.returncode}:\n{self.output()}")
        return self.get("/liveness")[0] in (200, 503)

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, Any]:
        return request("GET", self.url + path, timeout=timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def request(method: str, url: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 2.0) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            status, raw = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def run_sidecar(config_dir: Path, *args: str, env: dict[str, str] | None = None,
                timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
    """Run ``sidecar run`` expecting it to exit by itself (bad config, failed start)."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("CONFIG_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "run", "--config-dir", str(config_dir), *args],
        capture_output=True, text=True, env=full_env, timeout=timeout, check=False)

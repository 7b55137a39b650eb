"""Run the real ``sidecar`` command as a child process, the way a pod runs it."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests._wait import wait_until
from tests.servers._util import free_port


class PortTaken(RuntimeError):
    """The sidecar could not bind its HTTP port: another process has it."""


class SidecarProcess:
    def __init__(self, config_dir: Path, *args: str, env: dict[str, str] | None = None,
                 port: int | None = None, probe_listener: bool = False,
                 open_files: int | None = None, separate_stderr: bool = False) -> None:
        self.config_dir = config_dir
        #: A port of our choosing may be taken between free_port() and the bind: then the
        #: start is tried again on another one. A port given by the test is kept.
        self._port_chosen = port is None
        self.port = port or free_port()
        #: With ``probe_listener``: the probe listener's port (``--probe-port``).
        self.probe_port = free_port() if probe_listener else None
        #: The sidecar's open-files limit (RLIMIT_NOFILE, soft and hard), if not inherited.
        self.open_files = open_files
        self.args = list(args)
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.env.pop("CONFIG_DIR", None)
        # Logs go beside the test's temp files, never into a config dir from the repo.
        self.log_path = Path(tempfile.mkdtemp(prefix="sidecar-log-")) / f"sidecar-{self.port}.log"
        #: With ``separate_stderr``: stderr goes here, stdout alone to ``log_path``.
        self.separate_stderr = separate_stderr
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def probe_url(self) -> str:
        assert self.probe_port is not None, "started without probe_listener=True"
        return f"http://127.0.0.1:{self.probe_port}"

    def start(self, wait: bool = True, timeout: float = 15.0) -> SidecarProcess:
        for attempt in range(3):
            self._spawn()
            if not wait:
                return self
            try:
                self._wait_answering(timeout)
                return self
            except PortTaken:
                if not self._port_chosen or attempt == 2:
                    raise
                self.port = free_port()
                if self.probe_port is not None:
                    self.probe_port = free_port()
                self.log_path = self.log_path.with_name(f"sidecar-{self.port}.log")
        return self

    def wait_started(self, timeout: float = 15.0) -> SidecarProcess:
        """After ``start(wait=False)``: until it answers (a port taken meanwhile fails)."""
        self._wait_answering(timeout)
        return self

    def _spawn(self) -> None:
        cmd = [sys.executable, "-m", "sidecar", "run", "--config-dir", str(self.config_dir),
               "--http-port", str(self.port), *self.args]
        if self.probe_port is not None:
            cmd += ["--probe-port", str(self.probe_port)]
        limit = self.open_files

        def limit_open_files() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        log = open(self.log_path, "ab")  # noqa: SIM115
        err = open(self.stderr_path, "ab") if self.separate_stderr else log  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=err, env=self.env,
                                     stdin=subprocess.DEVNULL,
                                     preexec_fn=limit_open_files if limit else None)  # noqa: PLW1509
        log.close()
        err.close()

    @property
    def stderr_path(self) -> Path:
        return self.log_path.with_suffix(".stderr")

    def _wait_answering(self, timeout: float) -> None:
        """Until /liveness answers; an exit ends the wait at once with the sidecar's output."""
        assert self.proc is not None
        proc = self.proc

        def answers() -> bool:
            if proc.poll() is not None:
                return True  # reported below, outside wait_until, which retries on errors
            return self.get("/liveness")[0] in (200, 503)

        wait_until(answers, timeout, f"sidecar on port {self.port} answering")
        if proc.returncode is not None:
            output = self.output()
            taken = "cannot listen on" in output and "in use" in output
            message = f"sidecar exited with {proc.returncode}:\n{output}"
            raise PortTaken(message) if taken else RuntimeError(message)

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, Any]:
        return request("GET", self.url + path, timeout=timeout)

    def output(self) -> str:
        """What the sidecar wrote (stdout, then stderr when they are kept apart)."""
        return self.stdout() + (self.stderr() if self.separate_stderr else "")

    def stdout(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stderr(self) -> str:
        path = self.stderr_path
        return path.read_text(errors="replace") if path.exists() else ""

    def log_lines(self) -> list[str]:
        """The sidecar's log so far, line by line."""
        return self.output().splitlines()

    def open_fds(self) -> int:
        assert self.proc is not None
        return len(list(Path(f"/proc/{self.proc.pid}/fd").iterdir()))

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

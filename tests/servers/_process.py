"""A test server's child process: output to a log file, waiting until it serves, and
telling from its exit when another process had taken its port."""

from __future__ import annotations

import atexit
import re
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ._util import tail

__all__ = ["ServerExited", "ServerProcess", "wait_ready"]

# Go: "listen tcp 127.0.0.1:41141: bind: address already in use";
# Kafka: "Socket server failed to bind to 127.0.0.1:47391: Address already in use."
_PORT_TAKEN = re.compile(r"(?:127\.0\.0\.1|localhost):(\d+):? (?:bind: )?address already in use",
                         re.IGNORECASE)


class ServerExited(RuntimeError):
    """A server process ended while it was starting (or was expected to run)."""

    def __init__(self, name: str, code: int, output: str, log_tail: str) -> None:
        found = _PORT_TAKEN.search(output)
        #: The port the server could not bind, when that is why it exited.
        self.taken_port = int(found.group(1)) if found else None
        self.port_taken = found is not None or "address already in use" in output.lower()
        super().__init__(f"{name} exited with code {code}\n{log_tail}")


class ServerProcess:
    """A child process in a session of its own, whose output goes to a log file (never
    to a pipe that could fill up and block it), killed at interpreter exit if still
    running. ``other_logs`` are files the server writes itself (read for
    ``output()``)."""

    def __init__(self, name: str, log_file: Path, other_logs: Sequence[Path] = ()) -> None:
        self.name = name
        self.log_file = log_file
        self.logs = (log_file, *other_logs)
        self.popen: subprocess.Popen[bytes] | None = None
        self._offsets: dict[Path, int] = {}

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def start(self, cmd: Sequence[str], cwd: Path | None = None) -> None:
        # Where this run's output begins: an earlier run's lines are not this one's.
        self._offsets = {f: f.stat().st_size if f.exists() else 0 for f in self.logs}
        with open(self.log_file, "ab") as out:
            self.popen = subprocess.Popen(
                list(cmd), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=cwd,
                # Own session: a Ctrl-C to pytest does not reach it first; stop() decides.
                start_new_session=True)
        # Unregister first: one registration however often it is started.
        atexit.unregister(self.kill)
        atexit.register(self.kill)

    def output(self) -> str:
        """What the logs got since the last start."""
        parts = []
        for f in self.logs:
            if f.exists():
                with open(f, "rb") as reader:
                    reader.seek(self._offsets.get(f, 0))
                    parts.append(reader.read().decode(errors="replace"))
        return "\n".join(parts)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(tail(f, lines) for f in self.logs)

    def check_alive(self) -> None:
        """Raise ServerExited (with the log tail) if the process has ended."""
        if self.popen is not None and self.popen.poll() is not None:
            code = self.popen.returncode
            self.popen = None
            atexit.unregister(self.kill)
            raise ServerExited(self.name, code, self.output(), self.log_tail())

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait; SIGKILL after ``timeout`` seconds."""
        p = self.popen
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
        self.kill()

    def kill(self) -> None:
        """SIGKILL and reap."""
        p = self.popen
        if p is not None:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.popen = None
        atexit.unregister(self.kill)


def wait_ready(what: str, ready: Callable[[], object], timeout: float,
               *procs: ServerProcess, deadline: float | None = None,
               interval: float = 0.1) -> None:
    """Poll ``ready()`` until it returns True, failing at once with ServerExited when one
    of ``procs`` ends. ``ready`` may raise OSError or return a text (not ready yet: the
    text is shown when time runs out); TimeoutError with the log tails after
    ``timeout`` s (or at ``deadline``, a time.monotonic() value)."""
    end = deadline if deadline is not None else time.monotonic() + timeout
    last = "no answer yet"
    while True:
        for proc in procs:
            proc.check_alive()
        try:
            answer = ready()
        except (OSError, ValueError) as exc:  # refused, reset, TLS not up yet, half an answer
            last = f"{type(exc).__name__}: {exc}"
        else:
            if answer is True:
                return
            if isinstance(answer, str):
                last = answer
        if time.monotonic() >= end:
            logs = "\n".join(p.log_tail() for p in procs)
            raise TimeoutError(f"{what}: not within {timeout:g}s (last: {last})\n{logs}")
        time.sleep(interval)

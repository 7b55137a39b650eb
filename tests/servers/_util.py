"""Small helpers shared by the tests and the test servers: free ports, the provisioning
cache, and waiting on conditions."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Literal, TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (another process may
    take it before the caller binds it: servers that pick ports this way retry)."""
    return free_ports(1, host)[0]


def free_ports(count: int, host: str = "127.0.0.1") -> tuple[int, ...]:
    """``count`` distinct free ports: all are held until the last is picked, so the
    kernel cannot hand out the same one twice."""
    with ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return tuple(ports)


def cache_dir() -> Path:
    """Where scripts/provision puts binaries and jars (outside git):
    ``$CNINFRA_CACHE``, by default ``~/.cache/cninfra-sidecar``."""
    env = os.environ.get("CNINFRA_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cninfra-sidecar"


def provisioned(name: str, env_var: str, script: str) -> Path:
    """A binary scripts/provision built: ``$env_var``, else ``$CNINFRA_CACHE/bin/<name>``;
    FileNotFoundError naming the script to run when it is not there."""
    path = Path(os.environ.get(env_var) or cache_dir() / "bin" / name)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} is missing: run {script} (or make test)")
    return path


def wait_until(condition: Callable[[], T | Literal[False] | None], timeout: float, what: str,
               interval: float = 0.02) -> T:
    """Poll ``condition`` until it returns something truthy, and return that; after
    ``timeout`` s fail naming ``what`` with the last value or error seen. (The
    not-yet answers None and False are left out of the returned type.)

    An exception from ``condition`` counts as "not yet" (a server still starting
    refuses connections), so that a test waits on state, not on its transitions.
    """
    deadline = time.monotonic() + timeout
    last = "nothing"
    while True:
        try:
            result = condition()
        except Exception as exc:
            last = f"error {type(exc).__name__}: {exc}"  # not the exception: its frames pin sockets
            del exc
        else:
            if result:
                return result
            last = repr(result)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout:g}s (last: {last[:1000]})")
        time.sleep(interval)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` of a log file, headed by its name (for failure messages)."""
    if not path.exists():
        return f"--- {path.name}: (none) ---"
    text = path.read_text(errors="replace").splitlines()[-lines:]
    return f"--- {path.name} ---\n" + "\n".join(text)

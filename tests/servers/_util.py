"""Small helpers shared by the tests and the test servers: free ports, the provisioning
cache, and (re-exported from tests/_wait.py, the one place for it) waiting on conditions."""

from __future__ import annotations

import os
import socket
from contextlib import ExitStack
from pathlib import Path

from tests._wait import wait_until as wait_until  # noqa: PLC0414 - re-exported


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

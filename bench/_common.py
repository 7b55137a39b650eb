"""Helpers shared by the benchmarks: child sidecars, percentiles, RSS."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "config"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return statistics.median(values)


def http_status(port: int, path: str) -> int | None:
    """One raw HTTP/1.0 GET; None when nothing listens yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
            head = sock.recv(64)
    except OSError:
        return None
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


def start_sidecar(config_dir: Path = EXAMPLES, *args: str,
                  env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = open(Path(tempfile.gettempdir()) / f"bench-sidecar-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "run", "--config-dir", str(config_dir),
         "--http-port", str(port), *args],
        stdout=log, stderr=log, env={**os.environ, **(env or {})}, cwd=ROOT)
    log.close()
    return proc, port


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout: float = 20) -> float:
    """Seconds until the first 200 on /readiness."""
    begin = time.perf_counter()
    while time.perf_counter() - begin < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"sidecar exited with {proc.returncode}")
        if http_status(port, "/readiness") == 200:
            return time.perf_counter() - begin
        time.sleep(0.002)
    raise TimeoutError("sidecar never became ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def report(name: str, value: float, unit: str, target: str = "") -> None:
    shown = f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    print(f"  {name:<52} {shown:>12} {unit:<8} {target}")

"""Helpers shared by the benchmarks: child sidecars, percentiles, RSS, and figures.

Every figure a benchmark prints with :func:`report` is also recorded as a
:class:`Figure`; ``collect(main, argv)`` runs a benchmark's ``main`` and returns
them (each module's ``figures(argv)``), which is how ``python -m bench`` builds
BENCHMARKS.md.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
                  env: dict[str, str] | None = None,
                  cpu: int | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """A ``sidecar run`` on a free port; ``cpu``: pinned, with every thread, to that core."""
    port = free_port()
    log = open(Path(tempfile.gettempdir()) / f"bench-sidecar-{port}.log", "wb")  # noqa: SIM115
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    proc = subprocess.Popen(
        [*pin, sys.executable, "-m", "sidecar", "run", "--config-dir", str(config_dir),
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


@dataclass(frozen=True)
class Figure:
    """One measured figure; the same ``name`` in every run, so that runs compare."""

    name: str
    value: float
    unit: str
    #: The bound the figure is measured against (in ``unit``), if it has one.
    target: float | None = None
    higher_is_better: bool = False

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"{'>=' if self.higher_is_better else '<='} {format_value(self.target)}"

    def meets(self, value: float | None = None) -> bool | None:
        """Whether ``value`` (default: this figure's) is within the target; None without one."""
        if self.target is None:
            return None
        value = self.value if value is None else value
        return value >= self.target if self.higher_is_better else value <= self.target


_TARGET = re.compile(r"target\s*(<=|>=)\s*([\d,]+(?:\.\d+)?)\s*(?:([kM])(?![A-Za-z]))?")
_collected: list[Figure] | None = None


def parse_target(text: str) -> tuple[float | None, bool | None]:
    """``"target <= 300 ms"`` -> (300.0, False); ``"target >= 200k"`` -> (200000.0, True)."""
    match = _TARGET.search(text)
    if match is None:
        return None, None
    scale = {None: 1.0, "k": 1e3, "M": 1e6}[match.group(3)]
    value = float(match.group(2).replace(",", "")) * scale
    return value, match.group(1) == ">="


def record(name: str, value: float, unit: str, target: str = "", *,
           higher_is_better: bool | None = None) -> Figure:
    """Keep a figure for ``figures()``; the direction comes from the target, else the unit."""
    bound, higher = parse_target(target)
    if higher_is_better is None:
        higher_is_better = higher if higher is not None else unit.endswith("/s")
    figure = Figure(name.strip(), float(value), unit, bound, higher_is_better)
    if _collected is not None:
        _collected.append(figure)
    return figure


@contextmanager
def collecting() -> Iterator[list[Figure]]:
    """Figures recorded inside the block (``report`` and ``record`` calls)."""
    global _collected  # noqa: PLW0603 - benchmarks are plain scripts calling report()
    outer, _collected = _collected, []
    try:
        yield _collected
    finally:
        _collected = outer


def collect(main: Callable[[list[str]], None], argv: list[str] | None = None) -> list[Figure]:
    """Run a benchmark's ``main(argv)`` and return what it reported."""
    with collecting() as found:
        main(list(argv or []))
    return list(found)


def format_value(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:,.1f}"
    if abs(value) >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def report(name: str, value: float, unit: str, target: str = "", *,
           higher_is_better: bool | None = None) -> None:
    """Print a figure (``target`` is free text; "target <= N"/">= N" is its bound) and record it."""
    record(name, value, unit, target, higher_is_better=higher_is_better)
    shown = f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    print(f"  {name:<52} {shown:>12} {unit:<8} {target}")

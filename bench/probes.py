"""Issue 16 figures: the probe listener (``--probe-port``) under wrk, alone and while 256
connections flood ``/metrics`` on the REST port, against the REST port's own probes.

One sidecar on examples/config with its probe listener, pinned to the first core
(all its threads); wrk (50 connections, one thread, as the issue asks) pinned to
the second, so that the figures are the sidecar's and not the two fighting over
a core. Each figure is the best of ``--rounds`` rounds of ``--duration`` seconds
(the machine is shared). The flood is a second wrk (256 connections on
``/metrics``, also on the second core: it is bound by the sidecar's core, not its
own) that starts before and ends after the measured round. CPU per request is the
sidecar's user+system time over a round divided by the requests wrk counted:
what a probe costs whatever else runs on the machine.

    python -m bench.probes [--rounds 3] [--duration 10]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench._common import Figure, collect, free_port, report, start_sidecar, stop, wait_ready

#: Arguments under `python -m bench --quick`.
QUICK_ARGS = ["--rounds", "1", "--duration", "3"]
PROVISION = Path(__file__).resolve().parent.parent / "scripts" / "provision" / "wrk.sh"


@dataclass(frozen=True)
class Round:
    rps: float
    p99_ms: float
    cpu_us: float


def ensure_wrk() -> str:
    """wrk, installed from Debian's apt by scripts/provision/wrk.sh when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    done = subprocess.run(["bash", str(PROVISION)], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"wrk is needed and could not be installed: {done.stderr.strip()}")
    return done.stdout.strip().splitlines()[-1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parse(out: str) -> tuple[float, float, int]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    count = re.search(r"(\d+) requests in", out)
    if rps is None or p99 is None or count is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    factor = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return float(rps.group(1)), float(p99.group(1)) * factor, int(count.group(1))


def wrk_round(wrk: str, core: int, url: str, duration: int, pid: int,
              connections: int = 50) -> Round:
    before = _cpu_seconds(pid)
    out = subprocess.run(["taskset", "-c", str(core), wrk, "-t1", f"-c{connections}",
                          f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    cpu = _cpu_seconds(pid) - before
    rps, p99, count = _parse(out)
    return Round(rps, p99, cpu / max(count, 1) * 1e6)


def best(rounds: list[Round]) -> Round:
    """The round with the most requests (on a shared machine the others lost a core)."""
    return max(rounds, key=lambda r: r.rps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args(argv)
    print("probe listener (issue 16)")
    wrk = ensure_wrk()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("the probe benchmark needs two cores (sidecar, wrk)")
    sidecar_core, wrk_core = cpus[0], cpus[1]
    probe_port = free_port()
    proc, port = start_sidecar(Path(__file__).resolve().parent.parent / "examples" / "config",
                               "--probe-port", str(probe_port), cpu=sidecar_core)
    probes = f"http://127.0.0.1:{probe_port}"
    try:
        wait_ready(proc, port)
        results: dict[str, list[Round]] = {}
        for _ in range(args.rounds):  # interleaved, so that load from others hits all alike
            for path in ("/liveness", "/readiness"):
                results.setdefault(path, []).append(
                    wrk_round(wrk, wrk_core, probes + path, args.duration, proc.pid))
            results.setdefault("rest", []).append(
                wrk_round(wrk, wrk_core, f"http://127.0.0.1:{port}/readiness", args.duration,
                          proc.pid))
            flood = subprocess.Popen(
                ["taskset", "-c", str(wrk_core), wrk, "-t1", "-c256",
                 f"-d{args.duration + 4}s", f"http://127.0.0.1:{port}/metrics"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(2)  # the flood is in full swing before the probes are measured
            results.setdefault("flood", []).append(
                wrk_round(wrk, wrk_core, probes + "/readiness", args.duration, proc.pid))
            flood_out, _ = flood.communicate(timeout=args.duration + 60)
            flood_rps = re.search(r"Requests/sec:\s+([\d.]+)", flood_out)
            assert flood_rps is not None, flood_out
            results.setdefault("flood rps", []).append(Round(float(flood_rps.group(1)), 0, 0))
    finally:
        stop(proc)
    for path in ("/liveness", "/readiness"):
        top = best(results[path])
        report(f"{path} req/s, probe listener, 50 connections (wrk on its own core)", top.rps,
               "req/s", "target >= 40,000")
        report(f"{path} p99, probe listener, 50 connections", top.p99_ms, "ms",
               "target <= 3 ms")
    report("CPU per probe request, probe listener", best(results["/readiness"]).cpu_us, "us")
    flooded = best(results["flood"])
    report("/readiness p99, probe listener, while 256 connections flood /metrics",
           flooded.p99_ms, "ms", "target <= 3 ms")
    report("/readiness req/s, probe listener, during that flood", flooded.rps, "req/s")
    report("/metrics req/s of the flood (REST port, cached render)",
           best(results["flood rps"]).rps, "req/s")
    rest = best(results["rest"])
    report("/readiness req/s on the REST port (aiohttp), for comparison", rest.rps, "req/s")
    report("/readiness p99 on the REST port", rest.p99_ms, "ms")
    report("CPU per probe request, REST port", rest.cpu_us, "us")


def figures(argv: list[str] | None = None) -> list[Figure]:
    """What ``main(argv)`` reports, as records (``python -m bench`` writes BENCHMARKS.md)."""
    return collect(main, argv)


if __name__ == "__main__":
    main()

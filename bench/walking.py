"""Issue 2 figures: cold start, idle RSS, /readiness throughput and latency,
and the latency from report_state_change to an etcd watcher seeing it.

    python -m bench.walking [--starts 10] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import (
    ROOT,
    Figure,
    collect,
    median,
    percentile,
    report,
    rss_mib,
    start_sidecar,
    stop,
    wait_ready,
)

#: Arguments under `python -m bench --quick`.
QUICK_ARGS = ["--starts", "3", "--duration", "3", "--changes", "50"]


def cold_start(starts: int) -> None:
    times: list[float] = []
    for _ in range(starts):
        proc, port = start_sidecar()
        try:
            times.append(wait_ready(proc, port))
        finally:
            stop(proc)
    report("cold start to first 200 on /readiness (median)", median(times) * 1000, "ms",
           "target <= 300 ms")
    report(f"cold start, fastest of {starts}", min(times) * 1000, "ms")
    report(f"cold start, slowest of {starts}", max(times) * 1000, "ms")


def idle_rss_and_throughput(duration: int) -> None:
    proc, port = start_sidecar()
    try:
        wait_ready(proc, port)
        time.sleep(1.0)
        report("idle RSS, etcd disabled", rss_mib(proc.pid), "MiB",
               "target <= 42.9 MiB (45 MB)")
        wrk = shutil.which("wrk")
        if wrk is None:
            print("  wrk not installed (apt-get install wrk): throughput not measured")
            return
        # The kubelet probes from outside the pod: the load generator gets a core of its
        # own, so that the figures are the sidecar's and not the two fighting over a core.
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < 2:
            raise SystemExit("the /readiness load test needs two cores (sidecar, wrk)")
        os.sched_setaffinity(proc.pid, {cpus[0]})
        out = subprocess.run(
            ["taskset", "-c", str(cpus[1]), wrk, "-t1", "-c50", f"-d{duration}s", "--latency",
             f"http://127.0.0.1:{port}/readiness"],
            capture_output=True, text=True, check=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p99_text = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        assert p99_text is not None
        factor = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99_text.group(2)]
        report("/readiness requests/s, 50 connections (wrk on its own core)", rps, "req/s",
               "target >= 15,000")
        report("/readiness p99 latency, 50 connections (wrk on its own core)",
               float(p99_text.group(1)) * factor, "ms", "target <= 5 ms")
        report("RSS after the load", rss_mib(proc.pid), "MiB")
    finally:
        stop(proc)


async def _change_latency(endpoint: str, changes: int) -> list[float]:
    import aetcd

    from sidecar.builder import Options, build
    from sidecar.health.statuscheck import PluginState

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp)
        (config / "etcd.conf").write_text(f"endpoints: ['{endpoint}']\n")
        (config / "http.conf").write_text("endpoint: 127.0.0.1:0\n")
        sidecar = build(Options(config_dir=tmp, microservice_label="bench", env={}))
        agent = sidecar.agent()
        await agent.start()
        key = b"/vnf-agent/bench/check/status/v1/plugin/flapper"
        client = aetcd.Client(*endpoint.split(":")[:1], port=int(endpoint.split(":")[1]))
        latencies: list[float] = []
        try:
            watch = await client.watch(key)
            seen: asyncio.Queue[float] = asyncio.Queue()

            async def read() -> None:
                async for _event in watch:
                    seen.put_nowait(time.perf_counter())

            reader = asyncio.create_task(read())
            await asyncio.sleep(0.5)
            state = PluginState.OK
            for _ in range(changes):
                state = PluginState.ERROR if state is PluginState.OK else PluginState.OK
                begin = time.perf_counter()
                sidecar.statuscheck.report_state_change("flapper", state, "flap")
                arrived = await asyncio.wait_for(seen.get(), 5)
                latencies.append(arrived - begin)
            reader.cancel()
            await watch.cancel()
        finally:
            await client.close()
            await agent.stop()
    return latencies


def change_to_etcd(changes: int) -> None:
    import logging

    logging.getLogger("sidecar").setLevel(logging.ERROR)
    sys.path.insert(0, str(ROOT))
    from tests.servers.etcd import EtcdServer

    server = EtcdServer().start()
    try:
        latencies = asyncio.run(_change_latency(server.endpoint, changes))
    finally:
        server.close()
    report("report_state_change -> etcd watcher (p50)", median(latencies) * 1000, "ms",
           "target <= 20 ms")
    report("report_state_change -> etcd watcher (p99)", percentile(latencies, 99) * 1000, "ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--changes", type=int, default=200)
    args = parser.parse_args(argv)
    print("walking sidecar (issue 2)")
    cold_start(args.starts)
    idle_rss_and_throughput(args.duration)
    change_to_etcd(args.changes)


def figures(argv: list[str] | None = None) -> list[Figure]:
    """What ``main(argv)`` reports, as records (``python -m bench`` writes BENCHMARKS.md)."""
    return collect(main, argv)


if __name__ == "__main__":
    main()

"""Issue 5 figures: exit-to-restart latency, and the CPU it takes to watch idle processes.

Latency: a child records the time just before it exits; the gap to the next
STARTED event is what the manager adds (noticing the exit through the pidfd,
reaping, forking the next run). Restarts run back to back (no backoff).

Watching: N idle ``sleep`` processes under one manager with a 1 s status
interval; the CPU time of this whole process over the window, as a share of
one core.

    python -m bench.processmanager [--restarts 200] [--processes 100] [--duration 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from bench._common import Figure, collect, percentile, report, rss_mib
from sidecar.exec.processmanager import (
    NO_BACKOFF,
    Args,
    EventKind,
    ProcessEvent,
    ProcessManager,
    Restarts,
)

#: Report runs watch for 20 s (three runs make a minute); a single run defaults to 60 s.
RUN_ARGS = ["--duration", "20"]
QUICK_ARGS = ["--restarts", "50", "--processes", "20", "--duration", "5"]

EXIT_STAMP = ("import os, sys\n"
              "from time import time\n"
              "with open(sys.argv[1], 'a') as f: f.write(repr(time()) + '\\n')\n"
              "os._exit(1)\n")


async def restart_latency(restarts: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stamps = Path(tmp) / "exits"
        async with ProcessManager() as manager:
            proc = await manager.new_process(
                "bench", sys.executable, Args("-S", "-c", EXIT_STAMP, str(stamps)),
                Restarts(restarts, NO_BACKOFF))
            starts: list[float] = []
            done = asyncio.Event()

            def on_event(event: ProcessEvent) -> None:
                if event.kind is EventKind.STARTED:
                    starts.append(event.time)
                elif event.kind is EventKind.GAVE_UP:
                    done.set()

            proc.add_listener(on_event)
            began = time.perf_counter()
            await proc.start()
            await done.wait()
            took = time.perf_counter() - began
        exits = [float(line) for line in stamps.read_text().split()]
    gaps = [(start - exited) * 1000 for exited, start in zip(exits, starts[1:], strict=False)]
    report(f"exit-to-restart p50 ({len(gaps)} restarts)", percentile(gaps, 50), "ms")
    report(f"exit-to-restart p99 ({len(gaps)} restarts)", percentile(gaps, 99), "ms",
           "target <= 50 ms")
    report("exit-to-restart max", max(gaps), "ms")
    report("restarts per second, back to back", len(gaps) / took, "/s")


async def watch_cost(count: int, duration: float, interval: float) -> None:
    async with ProcessManager(status_interval=interval) as manager:
        begin = time.perf_counter()
        for index in range(count):
            proc = await manager.new_process(f"idle-{index}", "/bin/sleep", Args("3600"))
            await proc.start()
        spawn = (time.perf_counter() - begin) / count * 1000
        await asyncio.sleep(interval * 2)  # let the first status reads settle
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        await asyncio.sleep(duration)
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
        rss = rss_mib(os.getpid())
    report(f"start one process (of {count})", spawn, "ms")
    report(f"CPU watching {count} idle processes, {interval:g}s interval", cpu / wall * 100,
           "% core", "target <= 0.5 %")
    print(f"  (window {wall:.0f} s, CPU {cpu * 1000:.0f} ms, RSS {rss:.0f} MiB)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--restarts", type=int, default=200)
    parser.add_argument("--processes", type=int, default=100)
    parser.add_argument("--duration", type=float, default=60.0,
                        help="seconds to measure the watching cost (default 60)")
    parser.add_argument("--interval", type=float, default=1.0, help="status interval, s")
    args = parser.parse_args(argv)
    print("process manager (issue 5)")
    asyncio.run(restart_latency(args.restarts))
    asyncio.run(watch_cost(args.processes, args.duration, args.interval))


def figures(argv: list[str] | None = None) -> list[Figure]:
    """What ``main(argv)`` reports, as records (``python -m bench`` writes BENCHMARKS.md)."""
    return collect(main, argv)


if __name__ == "__main__":
    main()

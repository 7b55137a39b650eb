"""Issue 19 soak: a real ``sidecar run --log-format json`` with programs that flood their
output (10,000 lines a second each by default, every tenth line with bytes that are not
UTF-8, a 64 kB line every second), while /liveness is asked every 10 ms.

Reported: the probe's latency and failures during the flood, the sidecar's CPU, and at
the end a JSON parser's verdict on every line the sidecar wrote (stdout and stderr kept
apart): lines that did not parse (must be 0), and flood lines neither written nor counted
in a drop summary (must be 0).

    python -m bench.jsonlogs [--programs 1] [--rate 10000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._common import (
    ROOT,
    Figure,
    collect,
    free_port,
    http_status,
    percentile,
    report,
    stop,
    wait_ready,
)

RUN_ARGS = ["--seconds", "10"]
QUICK_ARGS = ["--seconds", "2"]

_FLOOD = """\
import sys, time
rate, seconds, done = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
out = sys.stdout.buffer
total, sent, long, start = int(rate * seconds), 0, 0, time.monotonic()
while sent < total:
    due = min(int((time.monotonic() - start) * rate) + 1, total)
    if due > sent:
        out.write(b"".join((b"flood %d \\xff\\xfe\\x00 junk\\n" if n % 10 == 0 else
                            b"flood %d\\n") % n for n in range(sent + 1, due + 1)))
        if due // rate > sent // rate:
            out.write(b"x" * 65536 + b"\\n")
            long += 1
        out.flush()
        sent = due
    time.sleep(0.002)
open(done + ".tmp", "w").write(f"{sent + long} {time.monotonic() - start}")
__import__("os").replace(done + ".tmp", done)
time.sleep(3600)
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def soak(programs: int, rate: int, seconds: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-jsonlogs-"))
    script = work / "flood.py"
    script.write_text(_FLOOD)
    config = work / "config"
    config.mkdir()
    dones = [work / f"p{i}.done" for i in range(programs)]
    (config / "supervisor.conf").write_text("programs:\n" + "".join(
        f"  - {{name: p{i}, executable-path: {sys.executable}, "
        f"executable-args: ['{script}', '{rate}', '{seconds}', '{done}']}}\n"
        for i, done in enumerate(dones)))
    out_path, err_path = work / "stdout", work / "stderr"
    port = free_port()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "run", "--config-dir", str(config),
             "--http-port", str(port), "--log-format", "json"],
            stdout=out, stderr=err, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_ready(proc, port)
        cpu_before, begin = _cpu_seconds(proc.pid), time.monotonic()
        latencies: list[float] = []
        failed = 0
        while not all(done.exists() for done in dones):
            asked = time.perf_counter()
            if http_status(port, "/liveness") == 200:
                latencies.append((time.perf_counter() - asked) * 1000)
            else:
                failed += 1
            time.sleep(0.01)
        cpu = (_cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - begin) * 100
        sent = sum(int(done.read_text().split()[0]) for done in dones)
        time.sleep(1.5)  # the last drop summaries (one a second)
    finally:
        stop(proc)

    bad = 0
    written = dropped = 0
    for path in (out_path, err_path):
        for line in path.read_bytes().split(b"\n")[:-1]:
            try:
                record = json.loads(line.decode("utf-8"))
            except ValueError:
                bad += 1
                continue
            if record.get("event") == "program.output":
                written += 1
            elif record.get("event") == "program.output.dropped":
                dropped += record["dropped"]
    print(f"json logs (issue 19), {programs} program(s) x {rate:,} lines/s for {seconds:g}s, "
          f"{os.cpu_count()} cpus")
    report("liveness during the flood p50", percentile(latencies, 50), "ms")
    report("liveness during the flood p99", percentile(latencies, 99), "ms", "target <= 100 ms")
    report("liveness answers other than 200", failed, "answers", "target <= 0")
    report("sidecar CPU during the flood", cpu, "% core")
    report("flood lines written", written, "lines", f"of {sent:,}")
    report("flood lines dropped (counted in summaries)", dropped, "lines")
    report("flood lines neither written nor counted", sent - written - dropped, "lines",
           "target <= 0")
    report("emitted lines that are not one JSON object", bad, "lines", "target <= 0")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--programs", type=int, default=1)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    soak(args.programs, args.rate, args.seconds)


def figures(argv: list[str] | None = None) -> list[Figure]:
    """What ``main(argv)`` reports, as records (``python -m bench`` writes BENCHMARKS.md)."""
    return collect(main, argv)


if __name__ == "__main__":
    main()

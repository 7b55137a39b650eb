"""Issue 6 figures: how long the sidecar takes to be rid of 50 programs after SIGTERM, and how
soon a hook runs after a program event.

Shutdown: a real ``sidecar run`` with 50 programs (``sleep``, and in a second round shells
that ignore SIGTERM and have a 1 s stop-timeout) and a hook for every event; the time from
SIGTERM until none of the 50 pids is in the process table (polled every millisecond), and
until the sidecar has exited.

Hook dispatch: one program that runs 50 ms, exits and is restarted 100 ms later (events
started, terminated, backoff); for each event, the time until its hook's process was started
(``HookRunner.on_start``) and until the hook (``/bin/date +%s.%N``) ran. A ``started`` event
comes alone; terminated and backoff come together, and one program's hooks run in event
order, so the second waits for the first. Then the same while 5 other programs crash-loop
(a restart every 100 ms) with a hook of their own.

    python -m bench.supervisor [--programs 50] [--rounds 5] [--events 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import tempfile
import time
import urllib.request
from pathlib import Path

from bench._common import Figure, collect, percentile, report, start_sidecar
from sidecar.exec.supervisor import ProgramEvent, Supervisor, parse_supervisor_config

#: A report run takes about a minute and a half; --quick checks that the bench works.
RUN_ARGS = ["--rounds", "3", "--events", "300"]
QUICK_ARGS = ["--programs", "10", "--rounds", "1", "--events", "30"]


def _programs_conf(count: int, deaf: bool) -> str:
    lines = ["programs:"]
    for index in range(count):
        if deaf:
            lines.append(f"  - {{name: p{index}, executable-path: /bin/sh, executable-args: "
                         f"['-c', \"trap '' TERM; exec sleep 3600\"], stop-timeout: 1s}}")
        else:
            lines.append(f"  - {{name: p{index}, executable-path: /bin/sleep, "
                         f"executable-args: ['3600']}}")
    lines += ["hooks:", "  - {cmd: /bin/true}"]
    return "\n".join(lines) + "\n"


def _rows(port: int) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/supervisor/programs",
                                timeout=2) as reply:
        rows: list[dict[str, object]] = json.loads(reply.read())
    return rows


def _alive(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def shutdown_round(count: int, deaf: bool) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp)
        (config / "supervisor.conf").write_text(_programs_conf(count, deaf))
        proc, port = start_sidecar(config)
        try:
            deadline = time.monotonic() + 30
            pids: list[int] = []
            while time.monotonic() < deadline:
                try:
                    rows = _rows(port)
                except OSError:
                    rows = []
                if len(rows) == count and all(r["running"] for r in rows):
                    pids = [int(str(r["pid"])) for r in rows]
                    break
                time.sleep(0.05)
            if not pids:
                raise RuntimeError("the programs did not start")
            time.sleep(0.3 if deaf else 0.1)  # the shells set their traps
            began = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            while any(_alive(pid) for pid in pids):
                time.sleep(0.001)
            gone = time.perf_counter() - began
            proc.wait(30)
            exited = time.perf_counter() - began
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return gone, exited


def shutdown(count: int, rounds: int) -> None:
    for deaf in (False, True):
        gone, exited = zip(*(shutdown_round(count, deaf) for _ in range(rounds)), strict=True)
        what = "TERM ignored, 1s stop-timeout" if deaf else "sleep"
        bound = "target <= 1500 ms" if deaf else "target <= 500 ms"
        report(f"SIGTERM -> {count} programs gone ({what}) p50",
               percentile([g * 1000 for g in gone], 50), "ms", bound)
        report(f"SIGTERM -> {count} programs gone ({what}) max", max(gone) * 1000, "ms")
        report(f"SIGTERM -> sidecar exited ({what}) p50",
               percentile([e * 1000 for e in exited], 50), "ms")


async def hook_latency(events: int, noisy: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stamps = Path(tmp) / "stamps"
        # Each cycle: started, 50 ms later terminated and backoff, 100 ms later started again.
        lines = ["programs:",
                 "  - {name: target, executable-path: /bin/sleep, executable-args: ['0.05'],"
                 f" restarts: {events // 3 + 1}, backoff-base: 100ms, backoff-cap: 100ms}}"]
        lines += [f"  - {{name: noisy{i}, executable-path: /bin/sh, executable-args: "
                  "['-c', 'exit 1'], restarts: -1, backoff-base: 100ms, backoff-cap: 100ms}"
                  for i in range(noisy)]
        lines += ["hooks:",
                  f"  - {{cmd: /bin/date, cmd-args: ['+%s.%N'], logfile-path: {stamps},"
                  " programs: [target]}"]
        if noisy:
            names = ", ".join(f"noisy{i}" for i in range(noisy))
            lines.append(f"  - {{cmd: /bin/true, programs: [{names}]}}")
        supervisor = Supervisor(parse_supervisor_config("\n".join(lines) + "\n", "bench"))
        target_events: list[ProgramEvent] = []
        spawn: dict[int, float] = {}
        done = asyncio.Event()

        def on_event(event: ProgramEvent) -> None:
            if event.program == "target":
                target_events.append(event)
                if event.state == "gave-up" or len(target_events) >= events:
                    done.set()

        def on_start(hook: str, event: ProgramEvent, delay: float) -> None:
            if event.program == "target":
                spawn[id(event)] = delay * 1000

        supervisor.add_listener(on_event)
        supervisor.hooks.on_start = on_start
        await supervisor.init()
        try:
            await asyncio.wait_for(done.wait(), 300)
            await asyncio.sleep(1.0)  # the last hooks finish within milliseconds
            dropped, noisy_runs = supervisor.hooks.dropped, supervisor.hooks.stats.get("true")
        finally:
            await supervisor.close()
        ran = [float(t) for t in stamps.read_text().split()]
    # One program's hooks run one event after the other: line i is event i.
    running = {id(e): (t - e.time) * 1000 for e, t in zip(target_events, ran, strict=False)}
    label = f", {noisy} crash-looping" if noisy else ""
    isolated = [id(e) for e in target_events if e.state == "started"]
    for what, keys in ((f"started{label}", isolated),
                       (f"every event{label}", [id(e) for e in target_events])):
        started = [spawn[k] for k in keys if k in spawn]
        ran_ms = [running[k] for k in keys if k in running]
        bound = "target <= 20 ms" if what == "started" else ""
        report(f"hook spawned after event ({what}) p50", percentile(started, 50), "ms", bound)
        report(f"hook spawned after event ({what}) p99", percentile(started, 99), "ms")
        report(f"hook running after event ({what}) p50", percentile(ran_ms, 50), "ms")
    print(f"  ({len(target_events)} events of the measured program)")
    if noisy_runs is not None:
        print(f"  (crash loops: {noisy_runs.runs} hook runs, {dropped} events dropped from "
              "full backlogs)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--programs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=300)
    args = parser.parse_args(argv)
    logging.getLogger("sidecar").setLevel(logging.ERROR)  # "no restarts left" is the plan
    print(f"supervisor (issue 6), {os.cpu_count()} cpus")
    shutdown(args.programs, args.rounds)
    asyncio.run(hook_latency(args.events, 0))
    asyncio.run(hook_latency(args.events, 5))


def figures(argv: list[str] | None = None) -> list[Figure]:
    """What ``main(argv)`` reports, as records (``python -m bench`` writes BENCHMARKS.md)."""
    return collect(main, argv)


if __name__ == "__main__":
    main()

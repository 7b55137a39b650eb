"""A crash-looping program slows neither the hooks nor the other programs (real sidecar).

Speed is measured in bench/supervisor.py; here each claim is a property that holds on a
busy machine: another program's hook never waits for the crash loop's hooks (made slow
enough that waiting for one could not go unnoticed), the other programs run on
undisturbed, the crash loop is held to its backoff, and the probes answer within the
kubelet's timeout.
"""

from __future__ import annotations

import itertools
import time
from functools import partial
from pathlib import Path
from typing import Any

from tests._wait import wait_until
from tests.probes import KUBELET_TIMEOUT
from tests.sidecar_proc import SidecarProcess, request

#: How long each of the crash loop's own hooks runs: a hook that had to wait for one of
#: them would come at least this late.
SLOW_HOOK = 30.0
BACKOFF = 0.02


def test_a_crash_loop_slows_neither_hooks_nor_other_programs(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    ticks, hook_log = config_dir / "ticks.log", config_dir / "hooks.log"
    (config_dir / "supervisor.conf").write_text(f"""
programs:
  - name: crasher
    executable-path: /bin/sh
    executable-args: ["-c", "exit 1"]
    restarts: -1
    backoff-base: {BACKOFF * 1000:.0f}ms
    backoff-cap: {BACKOFF * 1000:.0f}ms
  - name: steady
    executable-path: /bin/sleep
    executable-args: ["600"]
  - name: ticker
    executable-path: /bin/sh
    executable-args: ["-c", "while :; do date +%s.%N; sleep 0.05; done"]
    logfile-path: {ticks}
hooks:
  - cmd: /bin/sh
    cmd-args: ["-c", "echo $SUPERVISOR_PROCESS_NAME $SUPERVISOR_PROCESS_STATE
                      $(/bin/date +%s.%N) >> {hook_log}"]
  - name: crasher-slow
    cmd: /bin/sleep
    cmd-args: ["{SLOW_HOOK:g}"]
    programs: [crasher]
    timeout: 1m
""")
    sidecar = SidecarProcess(config_dir)
    sidecars.append(sidecar)
    sidecar.start()

    def row(name: str) -> dict[str, Any]:
        status, body = sidecar.get(f"/supervisor/programs/{name}")
        assert status == 200, body
        return dict(body)

    def restarts(name: str) -> int:
        return int(row(name)["restarts"])

    def tick_count() -> int:
        return len(ticks.read_text().split()) if ticks.exists() else 0

    def hooks_after(moment: float) -> list[float]:
        text = hook_log.read_text() if hook_log.exists() else ""
        return [float(parts[2]) for parts in (line.split() for line in text.splitlines())
                if parts[:2] == ["steady", "started"] and len(parts) == 3
                and float(parts[2]) > moment]

    def going_on(ticks_before: int, crasher_before: int) -> bool:
        return tick_count() >= ticks_before + 3 and restarts("crasher") >= crasher_before + 2

    # The crash loop is going, and one of its slow hooks is running.
    wait_until(lambda: restarts("crasher") >= 10, 20, "the crash loop")
    wait_until(lambda: sidecar.get("/supervisor")[1]["hooks"]["stats"]
               .get("crasher-slow", {}).get("runs"), 10, "a slow crasher hook running")
    assert not row("crasher")["healthy"]
    ticker = row("ticker")
    assert ticker["running"] and ticker["restarts"] == 0

    latencies, restart_times, probe_times = [], [], []
    window_start, first_restarts = time.monotonic(), restarts("crasher")
    wall_start = time.time()
    for _ in range(5):
        ticks_before, crasher_before = tick_count(), restarts("crasher")
        began = time.time()
        status, _ = request("POST", f"{sidecar.url}/supervisor/programs/steady/restart",
                            timeout=10)
        restart_times.append(time.time() - began)
        assert status == 200
        after = wait_until(partial(hooks_after, began), SLOW_HOOK / 2,
                           "the hook for steady's restart")
        assert isinstance(after, list)
        latencies.append(min(after) - began)
        sent = time.monotonic()
        status, _ = request("GET", f"{sidecar.url}/liveness", timeout=10)
        probe_times.append(time.monotonic() - sent)
        assert status == 200
        # The others go on meanwhile: the ticker keeps writing, the crash loop keeps looping.
        wait_until(partial(going_on, ticks_before, crasher_before), 10,
                   "the ticker writing and the crasher restarting")
    window = time.monotonic() - window_start
    looped = restarts("crasher") - first_restarts
    wall_end = time.time()

    stamps = [float(line) for line in ticks.read_text().split()
              if wall_start <= float(line) <= wall_end]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    ticker_after = row("ticker")
    sidecar.stop()
    print(f"hook latency for steady: max {max(latencies) * 1000:.0f} ms; ticker gap max "
          f"{max(gaps, default=0) * 1000:.0f} ms; restart POST max "
          f"{max(restart_times) * 1000:.0f} ms; liveness max {max(probe_times) * 1000:.0f} ms; "
          f"crasher restarts {looped} in {window:.1f} s")
    # steady's hooks ran while a crasher hook held its slot for SLOW_HOOK seconds.
    assert max(latencies) < SLOW_HOOK / 6, latencies
    # The ticker was never restarted nor replaced.
    assert ticker_after["pid"] == ticker["pid"] and ticker_after["restarts"] == 0
    # The backoff holds the crash loop to at most one restart per BACKOFF.
    assert looped <= window / BACKOFF + 2, (looped, window)
    # The kubelet would have had every liveness answer in time.
    assert max(probe_times) < KUBELET_TIMEOUT, probe_times

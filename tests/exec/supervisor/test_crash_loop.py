"""A crash-looping program slows neither the hooks nor the other programs (real sidecar)."""

from __future__ import annotations

import itertools
import time
from functools import partial
from pathlib import Path

from tests.servers._util import wait_until
from tests.sidecar_proc import SidecarProcess, request

#: What the crash loop may cost at most; unloaded, each is a few milliseconds.
HOOK_DEADLINE = 1.0
OUTPUT_GAP_DEADLINE = 0.5
REST_DEADLINE = 0.5


def test_a_crash_loop_slows_neither_hooks_nor_other_programs(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    ticks, hook_log = config_dir / "ticks.log", config_dir / "hooks.log"
    (config_dir / "supervisor.conf").write_text(f"""
programs:
  - name: crasher
    executable-path: /bin/sh
    executable-args: ["-c", "exit 1"]
    restarts: -1
    backoff-base: 20ms
    backoff-cap: 20ms
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
""")
    sidecar = SidecarProcess(config_dir)
    sidecars.append(sidecar)
    sidecar.start()

    def hook_lines(program: str, state: str) -> list[float]:
        text = hook_log.read_text() if hook_log.exists() else ""
        return [float(parts[2]) for parts in (line.split() for line in text.splitlines())
                if parts[:2] == [program, state] and len(parts) == 3]

    def hooks_after(moment: float) -> list[float]:
        return [t for t in hook_lines("steady", "started") if t > moment]

    # The crash loop is going (and its hooks with it).
    wait_until(lambda: len(hook_lines("crasher", "terminated")) >= 20, 20, "the crash loop")
    crasher = sidecar.get("/supervisor/programs/crasher")[1]
    assert crasher["restarts"] >= 10 and not crasher["healthy"]

    latencies, rest_times = [], []
    window_start = time.time()
    for _ in range(5):
        began = time.time()
        status, _ = request("POST", f"{sidecar.url}/supervisor/programs/steady/restart")
        rest_times.append(time.time() - began)
        assert status == 200
        after = wait_until(partial(hooks_after, began), 5, "the hook for steady's restart")
        assert isinstance(after, list)
        latencies.append(min(after) - began)
        began = time.time()
        assert request("GET", f"{sidecar.url}/liveness")[0] == 200
        rest_times.append(time.time() - began)
        time.sleep(0.2)
    window_end = time.time()

    stamps = [float(line) for line in ticks.read_text().split()
              if window_start <= float(line) <= window_end]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    restarts = sidecar.get("/supervisor/programs/crasher")[1]["restarts"]
    sidecar.stop()
    print(f"hook latency for steady: max {max(latencies) * 1000:.0f} ms; ticker gap max "
          f"{max(gaps) * 1000:.0f} ms; REST max {max(rest_times) * 1000:.0f} ms; "
          f"crasher restarts {restarts}")
    assert restarts > crasher["restarts"] + 5  # it kept crash-looping all along
    assert max(latencies) < HOOK_DEADLINE, latencies
    assert len(stamps) > 10 and max(gaps) < OUTPUT_GAP_DEADLINE, max(gaps)
    assert max(rest_times) < REST_DEADLINE, rest_times

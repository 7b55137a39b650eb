"""SIGTERM during start-up: at any moment, the sidecar exits promptly and leaves nothing behind.

The sidecar starts programs (supervisor and process-manager templates), opens an
etcd session and tries to reach a Kafka broker that is not there, so a signal
can land in any plugin's init or after_init. Before Python has installed the
agent's handlers the signal's default action ends the process (-15); after, the
agent stops what it started (0).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests._wait import wait_until
from tests.probes import Answer, ProbePoller
from tests.servers._util import free_port
from tests.servers.etcd import EtcdServer

#: Seconds after the spawn at which SIGTERM is sent, besides right after each plugin
#: phase: before Python has even imported the sidecar, and during imports and build.
DELAYS = (0.05, 0.2, 0.35)


def write_config(config_dir: Path, etcd: EtcdServer, marker: str) -> None:
    # `sleep 3600 <marker>` sleeps as long as `sleep 3600.0...`, and its command line
    # names the run, so that a survivor can be found.
    sleeper = ["3600", marker]
    (config_dir / "etcd.conf").write_text(f"endpoints: ['{etcd.endpoint}']\n")
    (config_dir / "kafka.conf").write_text(f"addrs: ['127.0.0.1:{free_port()}']\n")
    (config_dir / "supervisor.conf").write_text(json.dumps({"programs": [
        {"name": f"sleeper{i}", "executable-path": "/bin/sleep", "executable-args": sleeper}
        for i in range(3)]}))
    templates = config_dir / "templates"
    templates.mkdir()
    (templates / "napper.json").write_text(json.dumps(
        {"name": "napper", "cmd": "/bin/sleep",
         "p_options": {"args": sleeper, "run_on_startup": True}}))
    (config_dir / "process-manager.conf").write_text(f"template-path: {templates}\n")


def survivors(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


@dataclass(frozen=True)
class Outcome:
    moment: str
    code: int
    seconds: float
    log: str
    answers: list[Answer]


def sigterm_at(config_dir: Path, label: str, moment: str, delay: float = 0.0,
               after_line: re.Pattern[str] | None = None) -> Outcome:
    """Start the sidecar; SIGTERM after ``delay`` s, or as soon as it logs ``after_line``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("CONFIG_DIR", None)
    port = free_port()
    log = config_dir.parent / f"sidecar-{uuid.uuid4().hex[:6]}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "run", "--config-dir", str(config_dir),
             "--http-port", str(port), "--microservice-label", label, "--log-level", "debug"],
            stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)
    try:  # from right after the spawn: whatever fails, the sidecar does not outlive us
        with ProbePoller(f"http://127.0.0.1:{port}", interval=0.02) as probes:
            if after_line is None:
                time.sleep(delay)  # the moment itself, not a wait for something
            else:
                deadline = time.monotonic() + 20
                while not after_line.search(log.read_text(errors="replace")):
                    assert proc.poll() is None, log.read_text(errors="replace")
                    assert time.monotonic() < deadline, f"never logged {after_line.pattern}"
                    time.sleep(0.001)
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            code = proc.wait(15)
            took = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Outcome(moment, code, took, log.read_text(errors="replace"), probes.snapshot())


def test_sigterm_at_any_moment_of_start_up(etcd_server: EtcdServer, config_dir: Path) -> None:
    marker = f"0.000{uuid.uuid4().int % 10**9:09d}"
    label = f"faults-start-{uuid.uuid4().hex[:6]}"
    write_config(config_dir, etcd_server, marker)
    # The start-up trace names every plugin's init as it ends: a signal right after each
    # lands in the next one (after_init phases only start background tasks).
    first = sigterm_at(config_dir, label, "after start-up",
                       after_line=re.compile(r"agent started \d+ plugins in"))
    phases = re.findall(r"startup: (\S+\.init) took", first.log)
    assert len(phases) >= 10, first.log
    outcomes = [first]
    for delay in DELAYS:
        outcomes.append(sigterm_at(config_dir, label, f"{delay}s after the spawn", delay))
    for phase in phases:
        pattern = re.compile(rf"startup: {re.escape(phase)} took")
        outcomes.append(sigterm_at(config_dir, label, f"after {phase}", after_line=pattern))

    for outcome in outcomes:
        where = f"SIGTERM {outcome.moment}"
        assert outcome.code in (0, -signal.SIGTERM), f"{where}: exit {outcome.code}\n{outcome.log}"
        # Nothing here is slow to stop: no program needed SIGKILL, no close was cut off,
        # and the whole stop fit in the agent's budget (5 s, 7 s with the supervisor's
        # programs; typically it takes a tenth of that, but etcd's lease revoke may wait
        # for a slow disk).
        assert "sending SIGKILL" not in outcome.log, f"{where}\n{outcome.log}"
        assert "failed to close" not in outcome.log, f"{where}\n{outcome.log}"
        assert outcome.seconds < 7, f"{where}: {outcome.seconds:.1f}s to exit\n{outcome.log}"
        assert "Traceback" not in outcome.log, f"{where}\n{outcome.log}"
        # Whatever answered was a probe answer: refused before listening and after
        # closing, but never an error or a hang in between.
        for answer in outcome.answers:
            assert answer.status in (None, 200, 503), (where, answer)
            assert answer.seconds < 1.0, (where, answer)
        # No program outlives the sidecar; no status key outlives its session.
        wait_until(lambda: not survivors(marker), 3,
                   f"no program left running after {where}: {survivors(marker)}")
        keys = etcd_server.etcdctl("get", f"/vnf-agent/{label}/", "--prefix", "--keys-only")
        assert not keys.strip(), f"{where} left etcd keys: {keys}"
    # Both kinds of moment were hit: before the handlers (-15) and inside the agent (0).
    assert {o.code for o in outcomes} == {0, -signal.SIGTERM}, [
        (o.moment, o.code) for o in outcomes]

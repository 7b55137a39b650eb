"""Programs started beside a busy gRPC channel reach exec (real sidecar, real etcd).

gRPC's C core, as the grpcio wheels build it, registers ``pthread_atfork`` handlers.
A child that needs setting up (its parent-death signal) is started with fork(), and
those handlers then ran in it while other threads were inside gRPC: the child died
of SIGSEGV or SIGABRT before it reached exec: 30 to 50 of these 300 starts in
each of five runs. The etcd plugin's channel is busy as the programs crash-loop:
each exit changes a program's status, which is put to etcd as the restart forks,
and the fleet view watches those keys. Each start must end in its own exit code.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from tests._wait import wait_until
from tests.servers.etcd import EtcdServer
from tests.sidecar_proc import SidecarProcess

#: Programs, each exiting with its own code, and how often each is restarted.
PROGRAMS = {f"exits-{code}": code for code in (3, 4, 5, 6)}
RESTARTS = 74
STARTS = len(PROGRAMS) * (RESTARTS + 1)
EXITED = re.compile(r"process (\S+) \(pid \d+\) exited: (.+)$")


def _config(config_dir: Path, etcd: EtcdServer) -> None:
    (config_dir / "etcd.conf").write_text(
        f"endpoints: ['{etcd.endpoint}']\ndial-timeout: 500ms\noperation-timeout: 2s\n"
        "lease-ttl: 10s\nreconnect-interval: 500ms\n")
    (config_dir / "statuscheck.conf").write_text("publish-interval: 200ms\n"
                                                 "probe-interval: 200ms\n")
    (config_dir / "fleet.conf").write_text("enabled: true\n")  # a watch on /vnf-agent/
    programs = "".join(f"""
  - name: {name}
    executable-path: /bin/sh
    executable-args: ["-c", "echo ${{GRPC_ENABLE_FORK_SUPPORT-unset}}; exit {code}"]
    logfile-path: {config_dir / name}.log
    restarts: {RESTARTS}
    backoff-base: 1ms
    backoff-cap: 1ms
""" for name, code in PROGRAMS.items())
    (config_dir / "supervisor.conf").write_text(f"programs:{programs}")


def test_programs_started_beside_a_busy_grpc_channel_all_reach_exec(
        config_dir: Path, etcd_server: EtcdServer, sidecars: list[SidecarProcess]) -> None:
    _config(config_dir, etcd_server)
    sidecar = SidecarProcess(config_dir, "--microservice-label", "fork-beside-grpc")
    sidecars.append(sidecar)
    sidecar.start()

    def rows() -> dict[str, dict[str, Any]]:
        status, body = sidecar.get("/supervisor/programs")
        assert status == 200, body
        return {row["name"]: row for row in body}

    def all_gave_up() -> dict[str, dict[str, Any]] | None:
        current = rows()
        done = all(row["state"] == "gave-up" for row in current.values())
        return current if done else None

    # 300 starts take about 3 s on an idle machine; the deadline allows for a loaded one.
    final = wait_until(all_gave_up, 120, f"{STARTS} starts of {len(PROGRAMS)} programs")
    exits: Counter[tuple[str, str]] = Counter()
    for line in sidecar.log_lines():
        found = EXITED.search(line)
        if found:
            exits[found.group(1), found.group(2)] += 1
    wrong = {key: count for key, count in exits.items()
             if key[1] != f"exit code {PROGRAMS.get(key[0])}"}
    assert not wrong, (f"{sum(wrong.values())} of {sum(exits.values())} starts did not end "
                       f"in their own exit code: {wrong}")
    assert exits == Counter({(name, f"exit code {code}"): RESTARTS + 1
                             for name, code in PROGRAMS.items()})
    for name, code in PROGRAMS.items():
        assert final[name]["restarts"] == RESTARTS
        assert final[name]["exit_code"] == code
    for name in PROGRAMS:
        # Every start reached the shell, and the sidecar's own gRPC setting is not theirs.
        assert (config_dir / f"{name}.log").read_text().split() == ["unset"] * (RESTARTS + 1)
    assert "fork() handlers" not in sidecar.output()
    # The channel was in use all along: the status went to etcd, the fleet view watched it.
    assert etcd_server.get("/vnf-agent/fork-beside-grpc/check/status/v1/agent")
    assert "fork-beside-grpc" in str(sidecar.get("/fleet")[1])

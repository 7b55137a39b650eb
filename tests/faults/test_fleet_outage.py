"""A fleet of sidecars sharing one etcd: the etcd outage must not take a single pod out of
service. Twenty sidecar processes publish to one etcd; it is killed for 30 s while
every sidecar's /readiness is polled every 100 ms, each time on a new connection (as the
kubelet does), by one asyncio client."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests._wait import wait_until
from tests.faults.status import published
from tests.servers.etcd import EtcdServer
from tests.sidecar_proc import SidecarProcess

FLEET = 20
OUTAGE = 30.0
INTERVAL = 0.1
#: The kubelet's default probe timeout.
TIMEOUT = 1.0


@dataclass
class Polled:
    """Every answer one sidecar gave: status -> count, and what its status JSON said."""

    statuses: Counter[int | str] = field(default_factory=Counter)
    #: The etcd plugin's state in the last answer, and whether one said ERROR.
    etcd_state: int | None = None
    saw_etcd_error: bool = False
    slowest: float = 0.0

    @property
    def back(self) -> bool:
        """It said etcd was ERROR, and says OK again."""
        return self.saw_etcd_error and self.etcd_state == 1


async def probe(port: int) -> tuple[int, dict[str, Any]]:
    """One GET /readiness on a new connection: the status and the JSON body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /readiness HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"User-Agent: kube-probe/1.30\r\nConnection: close\r\n\r\n")
        raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


async def poll(port: int, polled: Polled, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    tick = loop.time()
    while not stop.is_set():
        begin = loop.time()
        try:
            async with asyncio.timeout(TIMEOUT):
                status, body = await probe(port)
        except (OSError, TimeoutError, ValueError, IndexError) as exc:
            polled.statuses[type(exc).__name__] += 1
        else:
            polled.statuses[status] += 1
            polled.etcd_state = body["plugins"]["etcd"]["state"]
            polled.saw_etcd_error |= polled.etcd_state == 2
        polled.slowest = max(polled.slowest, loop.time() - begin)
        tick += INTERVAL
        await asyncio.sleep(max(0.0, tick - loop.time()))


async def poll_through_an_outage(ports: list[int], etcd: EtcdServer) -> list[Polled]:
    """Poll every sidecar while etcd is killed, left dead for OUTAGE and started again."""
    polled = [Polled() for _ in ports]
    stop = asyncio.Event()
    pollers = [asyncio.create_task(poll(port, p, stop)) for port, p in zip(ports, polled,
                                                                            strict=True)]
    try:
        await asyncio.sleep(1.0)  # a round of answers from before the outage
        await asyncio.to_thread(etcd.kill)
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(etcd.start)
        # Polling goes on until every sidecar's status says etcd is back.
        deadline = time.monotonic() + 30
        while not all(p.back for p in polled) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await asyncio.gather(*pollers)
    return polled


@pytest.mark.timeout(360)
def test_an_etcd_outage_takes_no_pod_of_the_fleet_out_of_service(
        own_etcd: EtcdServer, tmp_path: Path, sidecars: list[SidecarProcess]) -> None:
    procs = []
    for i in range(FLEET):
        config = tmp_path / f"pod-{i}"
        config.mkdir()
        (config / "etcd.conf").write_text(
            f"endpoints: ['{own_etcd.endpoint}']\ndial-timeout: 500ms\n"
            "operation-timeout: 1s\nreconnect-interval: 1s\n")
        (config / "statuscheck.conf").write_text("probe-interval: 1s\n")
        proc = SidecarProcess(config, "--microservice-label", f"fleet-{i}")
        sidecars.append(proc)
        procs.append(proc.start(wait=False))
    for proc in procs:
        proc.wait_started(timeout=60)

    def all_ok_in_etcd() -> bool:
        keys = published(own_etcd, "/vnf-agent/")
        return all(keys.get(f"fleet-{i}/check/status/v1/agent", {}).get("state") == 1
                   for i in range(FLEET))

    wait_until(all_ok_in_etcd, 60, "every sidecar OK in etcd")

    polled = asyncio.run(poll_through_an_outage([p.port for p in procs], own_etcd))

    total = sum((p.statuses for p in polled), Counter())
    slowest = max(p.slowest for p in polled)
    print(f"{FLEET} sidecars, etcd dead for {OUTAGE:g} s: {dict(total)} answers, "
          f"slowest {slowest * 1000:.0f} ms")
    for i, p in enumerate(polled):
        # Every sidecar saw etcd go and come back, and said so in its status JSON...
        assert p.back, f"fleet-{i}: saw etcd ERROR {p.saw_etcd_error}, now {p.etcd_state}"
        # ...and answered every probe, with 200: not one pod left the Service.
        assert set(p.statuses) == {200}, f"fleet-{i}: {dict(p.statuses)}"
    assert total[200] >= FLEET * OUTAGE / INTERVAL * 0.5, f"too few answers: {dict(total)}"
    # Every agent has published again since: etcd says OK for each.
    wait_until(all_ok_in_etcd, 30, "every sidecar OK in etcd again")

"""The summary of a library's repeated log records (pure logic, a fake clock)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest

from sidecar.messaging.kafka._lognoise import RepeatSummary


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def library() -> Iterator[tuple[logging.Logger, logging.Logger, RepeatSummary, Clock]]:
    prefix = f"fakelib{uuid.uuid4().hex[:6]}"
    top, child = logging.getLogger(prefix), logging.getLogger(f"{prefix}.conn")
    clock = Clock()
    summary = RepeatSummary(10.0, clock)
    summary.install(prefix)
    yield top, child, summary, clock
    summary.uninstall()


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.name.split('.')[-1]} {r.levelname} {r.getMessage()}" for r in caplog.records]


def test_the_first_of_a_kind_passes_then_one_count_per_interval(
        library: tuple[logging.Logger, logging.Logger, RepeatSummary, Clock],
        caplog: pytest.LogCaptureFixture) -> None:
    top, child, summary, clock = library
    caplog.set_level(logging.DEBUG)
    for n in range(40):  # one kind, forty times in four seconds
        child.error("Unable connect to node %s: %s", 1, f"refused #{n}")
        clock.now += 0.1
    top.warning("Got error produce response: %s", "timeout")  # another kind: passes
    child.info("Reconnecting")  # info and debug always pass
    assert lines(caplog) == ["conn ERROR Unable connect to node 1: refused #0",
                             f"{top.name} WARNING Got error produce response: timeout",
                             "conn INFO Reconnecting"]
    assert summary.suppressed == 39
    clock.now += 6.0
    summary.flush()
    assert lines(caplog)[-1] == ("conn ERROR 39 more like this in the last 10s: "
                                 "Unable connect to node 1: refused #39")
    # Still failing: the next one is counted in the new interval, not shown.
    child.error("Unable connect to node %s: %s", 1, "refused again")
    assert len(caplog.records) == 4
    # Quiet for an interval: its count is logged, then the kind starts over.
    clock.now += 10.0
    summary.flush()
    assert lines(caplog)[-1].startswith("conn ERROR 1 more like this")
    clock.now += 10.0
    summary.flush()
    child.error("Unable connect to node %s: %s", 1, "refused after a pause")
    assert lines(caplog)[-1] == "conn ERROR Unable connect to node 1: refused after a pause"


def test_uninstall_reports_what_was_still_counted_and_lets_everything_through(
        library: tuple[logging.Logger, logging.Logger, RepeatSummary, Clock],
        caplog: pytest.LogCaptureFixture) -> None:
    _top, child, summary, _clock = library
    caplog.set_level(logging.WARNING)
    for _ in range(5):
        child.warning("Heartbeat failed")
    summary.uninstall()
    assert lines(caplog) == ["conn WARNING Heartbeat failed",
                             "conn WARNING 4 more like this in the last 0s: Heartbeat failed"]
    child.warning("Heartbeat failed")
    child.warning("Heartbeat failed")
    assert len(caplog.records) == 4

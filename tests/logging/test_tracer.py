"""The tracer: entries in order with indexes, averages, overall duration, clear."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from sidecar.logging.measure import Tracer


def test_log_time_records_entries_in_order_with_durations() -> None:
    tracer = Tracer("t")
    # An event that began 0.5 s before `before`; the bounds below are what the clocks
    # allow however long this thread is held up between the readings.
    before, began = time.time(), time.perf_counter()
    first = tracer.log_time("load", began - 0.5)
    ended, after = time.perf_counter(), time.time()
    tracer.log_time("store", time.perf_counter())
    trace = tracer.get()
    assert [(e.index, e.entity) for e in trace.entries] == [(0, "load"), (1, "store")]
    assert trace.entries[0] == first
    assert 0.5 <= first.duration <= 0.5 + (ended - began)
    assert before - 0.5 - 0.001 <= first.start <= after - 0.5 + 0.001  # 1 ms: the clocks differ
    assert trace.overall >= first.duration


def test_repeated_events_get_their_own_index_and_an_average() -> None:
    tracer = Tracer("loop")
    late = 0.0  # how long log_time came after `now`, at most
    for seconds in (0.01, 0.03):
        now = time.perf_counter()
        tracer.log_time("step", now - seconds)  # an event that began `seconds` ago
        late = max(late, time.perf_counter() - now)
    trace = tracer.get()
    assert [e.index for e in trace.entries] == [0, 1]
    assert 0.02 - 1e-9 <= trace.average["step"] <= 0.02 + late + 1e-9


def test_get_is_a_snapshot_and_clear_starts_again() -> None:
    tracer = Tracer("t")
    tracer.log_time("a", time.perf_counter())
    snapshot = tracer.get()
    tracer.log_time("b", time.perf_counter())
    assert len(snapshot.entries) == 1
    tracer.clear()
    empty = tracer.get()
    assert empty.entries == () and empty.average == {} and empty.overall == 0
    assert tracer.log_time("c", time.perf_counter()).index == 0


def test_context_manager_times_the_block_even_when_it_raises() -> None:
    tracer = Tracer("t")
    with pytest.raises(ValueError, match="boom"), tracer.measure("failing"):
        time.sleep(0.01)
        raise ValueError("boom")
    (entry,) = tracer.get().entries
    assert entry.entity == "failing"
    assert entry.duration >= 0.01


async def test_decorator_times_functions_and_coroutines() -> None:
    tracer = Tracer("t")

    @tracer.traced
    def compute(x: int) -> int:
        return x * 2

    @tracer.traced("fetch")
    async def fetch(x: int) -> int:
        await asyncio.sleep(0.01)
        return x + 1

    assert compute(2) == 4
    assert await fetch(1) == 2
    names = [e.entity for e in tracer.get().entries]
    assert names == [compute.__qualname__, "fetch"]
    assert tracer.get().entries[1].duration >= 0.01


def test_bounded_tracer_keeps_the_last_entries_and_every_event_in_the_average() -> None:
    tracer = Tracer("t", max_entries=2)
    for _ in range(5):
        tracer.log_time("x", time.perf_counter())
    trace = tracer.get()
    assert [e.index for e in trace.entries] == [3, 4]
    assert "x" in trace.average


def test_threads_get_distinct_indexes() -> None:
    tracer = Tracer("t")

    def work() -> None:
        for _ in range(200):
            tracer.log_time("w", time.perf_counter())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    indexes = [e.index for e in tracer.get().entries]
    assert sorted(indexes) == list(range(800))


def test_to_dict_is_json_ready() -> None:
    tracer = Tracer("startup")
    tracer.log_time("etcd.init", time.perf_counter())
    data = tracer.get().to_dict()
    assert data["name"] == "startup"
    assert set(data["entries"][0]) == {"index", "entity", "start", "duration"}
    assert set(data) == {"name", "overall", "entries", "average"}

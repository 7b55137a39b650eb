"""NamedMapping: values by name, exact secondary indexes, and watches that never block writers."""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
import random
import subprocess
import sys
from typing import Any

import pytest

import sidecar.idxmap
from sidecar.idxmap import MappingEvent, NamedMapping, NamedMappingReader
from tests._wait import until

Value = dict[str, Any]


def by_color_and_tags(value: Value) -> dict[str, Any]:
    return {"color": value["color"], "tag": value.get("tags", [])}


def colors() -> NamedMapping[Value]:
    return NamedMapping("things", by_color_and_tags)


def test_put_get_and_names_in_insertion_order() -> None:
    m = colors()
    m.put("b", {"color": "red"})
    m.put("a", {"color": "blue"})
    assert m.get_value("b") == {"color": "red"}
    assert m.get_value("missing") is None
    assert m.list_all_names() == ["b", "a"]
    assert len(m) == 2
    assert "a" in m
    assert "c" not in m
    assert dict(m.items()) == {"b": {"color": "red"}, "a": {"color": "blue"}}


def test_secondary_index_is_exact_after_overwrites_and_deletes() -> None:
    m = colors()
    m.put("a", {"color": "red", "tags": ["x", "y"]})
    m.put("b", {"color": "red", "tags": ["y"]})
    m.put("c", {"color": "blue"})
    assert m.list_names("color", "red") == ("a", "b")
    assert m.list_names("tag", "y") == ("a", "b")
    assert m.list_fields("a") == {"color": ["red"], "tag": ["x", "y"]}

    m.put("a", {"color": "blue", "tags": ["z"]})  # overwrite moves every entry
    assert m.list_names("color", "red") == ("b",)
    assert m.list_names("color", "blue") == ("c", "a")
    assert m.list_names("tag", "x") == ()
    assert m.list_names("tag", "y") == ("b",)
    assert m.list_names("tag", "z") == ("a",)
    assert sorted(m.list_values("tag")) == ["y", "z"]

    assert m.delete("b") == {"color": "red", "tags": ["y"]}
    assert m.list_names("color", "red") == ()
    assert m.list_values("color") == ["blue"]
    assert m.list_names("tag", "y") == ()
    assert m.list_fields("b") == {}
    assert m.list_names("no-such-field", "red") == ()


def test_index_matches_a_brute_force_scan_after_random_operations() -> None:
    rng = random.Random(7)
    m = colors()
    model: dict[str, Value] = {}
    for _ in range(5000):
        name = f"n{rng.randrange(60)}"
        if rng.random() < 0.3:
            assert m.delete(name) == model.pop(name, None)
        else:
            value = {"color": rng.choice("rgb"), "tags": rng.sample("wxyz", rng.randrange(3))}
            m.put(name, value)
            model[name] = value
    for color in "rgb":
        expected = {n for n, v in model.items() if v["color"] == color}
        assert set(m.list_names("color", color)) == expected
    for tag in "wxyz":
        expected = {n for n, v in model.items() if tag in v["tags"]}
        assert set(m.list_names("tag", tag)) == expected
    assert set(m.list_all_names()) == set(model)


def test_answers_are_immutable_snapshots() -> None:
    m = colors()
    m.put("a", {"color": "red"})
    first = m.list_names("color", "red")
    m.put("b", {"color": "red"})
    assert first == ("a",)  # an answer given earlier does not change under the caller
    assert m.list_names("color", "red") == ("a", "b")


def test_a_string_is_one_index_value_and_duplicates_count_once() -> None:
    m: NamedMapping[str] = NamedMapping("s", lambda v: {"word": v, "letters": list(v)})
    m.put("a", "noon")
    assert m.list_fields("a") == {"word": ["noon"], "letters": ["n", "o"]}
    m.put("a", "on")
    assert m.list_names("letters", "n") == ("a",)
    m.delete("a")
    assert m.list_values("letters") == []


def test_without_index_function_only_names() -> None:
    m: NamedMapping[int] = NamedMapping()
    m.put("x", 1)
    assert m.list_fields("x") == {}
    assert m.list_names("any", "1") == ()


def test_update_only_replaces_present_names() -> None:
    m = colors()
    assert m.update("a", {"color": "red"}) is False
    assert "a" not in m
    m.put("a", {"color": "red"})
    assert m.update("a", {"color": "blue"}) is True
    assert m.list_names("color", "blue") == ("a",)


def test_delete_returns_the_old_value_or_none() -> None:
    m = colors()
    m.put("a", {"color": "red"})
    assert m.delete("a") == {"color": "red"}
    assert m.delete("a") is None


def test_a_failing_index_function_changes_nothing() -> None:
    m = colors()
    m.put("a", {"color": "red"})
    with pytest.raises(KeyError):
        m.put("a", {"no-color": 1})
    assert m.get_value("a") == {"color": "red"}
    assert m.list_names("color", "red") == ("a",)


def test_bad_index_function_results_and_names_are_clear_errors() -> None:
    not_a_mapping: NamedMapping[int] = NamedMapping("bad", lambda v: [v])  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="expected a mapping"):
        not_a_mapping.put("a", 1)
    not_iterable: NamedMapping[int] = NamedMapping("bad", lambda v: {"n": v})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="for field 'n'"):
        not_iterable.put("a", 1)
    with pytest.raises(TypeError, match="name must be a str"):
        colors().put(1, {"color": "red"})  # type: ignore[arg-type]


def test_read_side_protocol_is_satisfied() -> None:
    reader: NamedMappingReader[Value] = colors()  # what a cache consumer is handed
    assert reader.title == "things"


# -- watches ------------------------------------------------------------------

async def test_events_carry_name_value_previous_value_and_flags_in_order() -> None:
    m = colors()
    m.put("pre", {"color": "red"})
    async with m.events("me") as stream:
        m.put("a", {"color": "red"})
        m.put("a", {"color": "blue"})
        m.delete("a")
        m.delete("never-there")  # no event for a no-op
        m.update("never-there", {"color": "red"})
        m.clear()  # one delete event per name
        got = [await stream.get() for _ in range(4)]
    assert got == [
        MappingEvent("things", "a", {"color": "red"}, None),
        MappingEvent("things", "a", {"color": "blue"}, {"color": "red"}, update=True),
        MappingEvent("things", "a", None, {"color": "blue"}, deleted=True),
        MappingEvent("things", "pre", None, {"color": "red"}, deleted=True),
    ]
    assert len(m) == 0


async def test_callback_watch_sync_and_async_callbacks() -> None:
    m = colors()
    seen_sync: list[tuple[str, bool]] = []
    seen_async: list[str] = []

    async def slow_async(event: MappingEvent[Value]) -> None:
        await asyncio.sleep(0)
        seen_async.append(event.name)

    w1 = m.watch("sync", lambda e: seen_sync.append((e.name, e.deleted)))
    w2 = m.watch("async", slow_async)
    for i in range(10):
        m.put(f"n{i}", {"color": "red"})
    m.delete("n0")
    await until(lambda: len(seen_sync) == 11 and len(seen_async) == 11, 5,
                "both watchers seeing all 11 events")
    assert seen_sync[-1] == ("n0", True)
    assert seen_async == [f"n{i}" for i in range(10)] + ["n0"]
    await w1.close()
    await w2.close()
    await w2.close()  # idempotent
    m.put("after", {"color": "red"})
    await asyncio.sleep(0.01)
    assert len(seen_sync) == 11
    assert m.subscriptions() == []


async def test_a_failing_callback_is_logged_and_the_watch_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    m = colors()
    seen: list[str] = []

    def flaky(event: MappingEvent[Value]) -> None:
        if event.name == "bad":
            raise RuntimeError("boom")
        seen.append(event.name)

    watch = m.watch("flaky", flaky)
    m.put("bad", {"color": "red"})
    m.put("good", {"color": "red"})
    await until(lambda: seen == ["good"], 5, "the good event after the bad one")
    assert watch.errors == 1
    assert "watch callback of flaky failed on 'bad'" in caplog.text
    await m.close()
    assert watch.closed


async def test_slow_subscriber_is_bounded_reported_and_never_blocks_writers(
        caplog: pytest.LogCaptureFixture) -> None:
    m = colors()
    release = asyncio.Event()
    slow_seen: list[MappingEvent[Value]] = []
    fast_seen: list[str] = []

    async def slow(event: MappingEvent[Value]) -> None:
        await release.wait()
        slow_seen.append(event)

    slow_watch = m.watch("slow", slow, max_pending=10)
    m.watch("fast", lambda e: fast_seen.append(e.name))
    stream = m.events("stream", max_pending=5)

    with caplog.at_level(logging.WARNING, logger="sidecar.idxmap"):
        for i in range(1000):  # all synchronous: a writer never waits for a subscriber
            m.put(f"n{i}", {"color": "red"})
    assert len(m) == 1000
    # One tuple: mypy would keep `stream.overflowed` narrowed past the reads that clear it.
    assert (slow_watch.overflowed, stream.overflowed) == (True, True)
    assert slow_watch.pending <= 10 and stream.pending == 5
    assert stream.dropped == 995
    assert m.dropped_events == stream.dropped + slow_watch.dropped
    warnings = [r for r in caplog.records if "more than 10 events behind" in r.getMessage()]
    assert len(warnings) == 1  # once per overflow, not once per dropped event

    # The fast one lost nothing.
    await until(lambda: len(fast_seen) == 1000, 5, "the fast watcher seeing 1000 events")
    assert fast_seen == [f"n{i}" for i in range(1000)]

    # The stream gets what was queued, then one resync event, then new events again.
    names = [(await stream.get()).name for _ in range(5)]
    assert names == [f"n{i}" for i in range(5)]
    resync = await stream.get()
    assert resync.resync and resync.missed == 995 and resync.name == ""
    assert not stream.overflowed
    m.put("later", {"color": "blue"})
    assert (await stream.get()).name == "later"
    stream.close()

    release.set()
    await until(lambda: any(e.resync for e in slow_seen), 5, "a resync event for the slow watcher")
    assert [e.resync for e in slow_seen].count(True) == 1
    assert slow_seen[-1].resync and slow_seen[-1].missed == slow_watch.dropped
    await m.close()


async def test_reading_then_watching_is_a_consistent_start() -> None:
    m = colors()
    for i in range(5):
        m.put(f"n{i}", {"color": "red"})
    state = {n: m.get_value(n) for n in m.list_all_names()}
    stream = m.events("mirror")  # no await in between: nothing can slip through
    m.delete("n1")
    m.put("n9", {"color": "blue"})
    for _ in range(2):
        event = await stream.get()
        if event.deleted:
            state.pop(event.name)
        else:
            state[event.name] = event.value
    assert state == dict(m.items())
    stream.close()


async def test_streams_end_when_closed_and_names_are_unique() -> None:
    m = colors()
    stream = m.events("one")
    with pytest.raises(ValueError, match="already watches"):
        m.events("one")
    with pytest.raises(ValueError, match="must not be empty"):
        m.events("")

    async def consume() -> list[str]:
        return [e.name async for e in stream]

    task = asyncio.create_task(consume())
    m.put("a", {"color": "red"})
    await until(lambda: stream.pending == 0, 5, "the stream drained")
    await m.close()
    assert await asyncio.wait_for(task, 2) == ["a"]
    with pytest.raises(LookupError):
        await stream.get()
    m.events("one").close()  # the name is free again


# -- package ------------------------------------------------------------------

def test_public_api_is_exported_and_every_module_imports_alone() -> None:
    for name in sidecar.idxmap.__all__:
        assert getattr(sidecar.idxmap, name) is not None
    for module in pkgutil.iter_modules(sidecar.idxmap.__path__, "sidecar.idxmap."):
        importlib.import_module(module.name)


def test_importing_idxmap_does_not_load_the_etcd_client() -> None:
    code = ("import sys, sidecar.idxmap, sidecar.fleet; "
            "print(sorted(m for m in ('aetcd', 'grpc') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


async def test_closing_a_watch_keeps_the_closers_deadline() -> None:
    # The agent bounds close() with a deadline; a callback slow to unwind must not make
    # that deadline pass unnoticed (the close used to swallow its own cancellation).
    m = colors()
    entered = asyncio.Event()

    async def slow_to_unwind(event: MappingEvent[Value]) -> None:
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.Event().wait()  # until cancelled once more
            raise

    watch = m.watch("slow", slow_to_unwind)
    m.put("a", {"color": "red"})
    await asyncio.wait_for(entered.wait(), 5)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await watch.close()
    assert watch.closed

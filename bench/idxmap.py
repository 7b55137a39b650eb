"""Issue 4 figures: NamedMapping put and list_names throughput, memory per 100k names,
and how long a CacheHelper takes to catch up with 10k keys in a real etcd.

    python -m bench.idxmap [--items 100000] [--lookups 1000000] [--keys 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from bench._common import Figure, collect, record
from sidecar.idxmap import CacheHelper, NamedMapping

Doc = dict[str, Any]


#: Arguments under `python -m bench --quick`.
QUICK_ARGS = ["--items", "20000", "--lookups", "100000", "--keys", "2000"]


def two_fields(doc: Doc) -> dict[str, Any]:
    """A typical index function: one scalar field and one list field."""
    return {"state": doc["state"], "zone": doc["zones"]}


def docs(count: int, shift: int = 0) -> list[Doc]:
    states = ("OK", "ERROR", "INIT")
    return [{"state": states[(i + shift) % 3], "zones": [f"z{(i + shift) % 100}"], "n": i}
            for i in range(count)]


def report(name: str, value: float, unit: str, target: str = "") -> None:
    record(name, value, unit, target)
    shown = f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    print(f"  {name:<56} {shown:>12} {unit:<9} {target}")


def best_rate(runs: int, count: int, work: Callable[[], None],
              setup: Callable[[], None] | None = None) -> float:
    """Operations per second of the fastest of ``runs`` (the machine is shared)."""
    best = float("inf")
    for _ in range(runs):
        if setup is not None:
            setup()
        gc.collect()
        begin = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - begin)
    return count / best


def puts(items: int) -> None:
    names = [f"agent-{i}" for i in range(items)]
    first, second = docs(items), docs(items, shift=1)
    state: dict[str, NamedMapping[Doc]] = {}

    def fresh() -> None:
        state["m"] = NamedMapping("bench", two_fields)

    def insert() -> None:
        put = state["m"].put
        for name, doc in zip(names, first, strict=True):
            put(name, doc)

    def overwrite() -> None:  # every put moves both index entries
        put = state["m"].put
        for name, doc in zip(names, second, strict=True):
            put(name, doc)

    report(f"put, new names, 2-field index ({items:,} names)",
           best_rate(3, items, insert, fresh), "puts/s", "target >= 200k")
    report("put, overwrite moving both index entries", best_rate(3, items, overwrite, insert),
           "puts/s")
    report("put, overwrite with the same index entries", best_rate(3, items, insert, insert),
           "puts/s")

    def with_subscriber() -> None:
        fresh()
        state["m"].events("bench", max_pending=items + 1)

    report("put, new names, one subscriber queueing every event",
           best_rate(3, items, insert, with_subscriber), "puts/s")


def lookups(items: int, count: int) -> None:
    mapping: NamedMapping[Doc] = NamedMapping("bench", two_fields)
    for i, doc in enumerate(docs(items)):
        mapping.put(f"agent-{i}", doc)
    queries = [("state", ("OK", "ERROR", "INIT")[i % 3]) if i % 2 else ("zone", f"z{i % 100}")
               for i in range(count)]

    def run() -> None:
        list_names = mapping.list_names
        for field, value in queries:
            list_names(field, value)

    report(f"list_names at {items:,} names (answers of {items // 100:,}-{items // 3:,})",
           best_rate(3, count, run), "lookups/s", "target >= 1M")

    # The first look-up after a change rebuilds that answer once.
    rounds = 200
    begin = time.perf_counter()
    for i in range(rounds):
        mapping.put("agent-0", {"state": "OK", "zones": [f"z{i % 100}"], "n": i})
        mapping.list_names("zone", f"z{i % 100}")
    per_change = (time.perf_counter() - begin) / rounds
    report(f"put + first list_names of a changed {items // 100:,}-name answer",
           per_change * 1e6, "us")


def memory(items: int) -> None:
    names = [f"agent-{i}" for i in range(items)]
    values = docs(items)
    gc.collect()
    tracemalloc.start()
    mapping: NamedMapping[Doc] = NamedMapping("bench", two_fields)
    for name, doc in zip(names, values, strict=True):
        mapping.put(name, doc)
    for field, value in (("state", "OK"), ("zone", "z1")):
        mapping.list_names(field, value)
    used, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    report(f"memory of the mapping per {items:,} names (values excluded)",
           used / 2**20 * 100_000 / items, "MiB")
    report("  memory per name", used / items, "bytes")
    tracemalloc.start()
    sample = docs(items)
    values_size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del sample
    report(f"  for scale: the {items:,} small dict values themselves", values_size / 2**20,
           "MiB")


async def catch_up(keys: int) -> None:
    import aetcd

    from tests.servers.etcd import EtcdServer

    server = EtcdServer().start()
    try:
        host, _, port = server.endpoint.rpartition(":")
        async with aetcd.Client(host=host, port=int(port), timeout=10) as client:
            for start in range(0, keys, 100):  # etcd allows 128 operations per transaction
                ops = [client.transactions.put(
                    f"/vnf-agent/agent-{i}/check/status/v1/agent".encode(),
                    json.dumps({"build_version": "0.1.0", "state": 1 + (i % 7 == 0),
                                "start_time": 1764064800, "last_change": 1764064801,
                                "last_update": 1764064871}).encode())
                    for i in range(start, min(start + 100, keys))]
                await client.transaction(compare=[], success=ops, failure=[])

            times = []
            for _ in range(5):
                mapping: NamedMapping[Doc] = NamedMapping(
                    "fleet", lambda d: {"state": str(d["state"])})
                begin = time.perf_counter()
                async with CacheHelper(mapping, client, "/vnf-agent/") as cache:
                    await cache.wait_synced()
                    times.append(time.perf_counter() - begin)
                    assert len(mapping) == keys
            report(f"cache catch-up over {keys:,} existing keys (median of 5)",
                   statistics.median(times) * 1000, "ms", "target <= 1000 ms")
            report("  cache catch-up, fastest of 5", min(times) * 1000, "ms")
            report("  cache catch-up, slowest of 5", max(times) * 1000, "ms")

            mapping = NamedMapping("fleet", lambda d: {"state": str(d["state"])})
            async with CacheHelper(mapping, client, "/vnf-agent/") as cache:
                await cache.wait_synced()
                done = asyncio.Event()
                last = f"agent-{keys - 1}/check/status/v1/agent"
                mapping.watch("bench", lambda e: done.set() if e.name == last
                              and e.value and e.value["n"] == 1 else None)
                begin = time.perf_counter()
                for start in range(0, keys, 100):
                    ops = [client.transactions.put(
                        f"/vnf-agent/agent-{i}/check/status/v1/agent".encode(),
                        json.dumps({"state": 2, "n": 1}).encode())
                        for i in range(start, min(start + 100, keys))]
                    await client.transaction(compare=[], success=ops, failure=[])
                await done.wait()
                elapsed = time.perf_counter() - begin
                await mapping.close()
            report(f"watch: {keys:,} changes written and applied", keys / elapsed,
                   "changes/s", "(bounded by the etcd writes)")
    finally:
        server.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args(argv)
    print("idxmap (issue 4)")
    puts(args.items)
    lookups(args.items, args.lookups)
    memory(args.items)
    asyncio.run(catch_up(args.keys))


def figures(argv: list[str] | None = None) -> list[Figure]:
    """What ``main(argv)`` reports, as records (``python -m bench`` writes BENCHMARKS.md)."""
    return collect(main, argv)


if __name__ == "__main__":
    main()

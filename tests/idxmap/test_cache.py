"""CacheHelper against a real etcd: following changes, outages, a replaced store, compaction."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aetcd
import pytest
from google.protobuf import wrappers_pb2

from sidecar.health.statuscheck import PluginState, StatusCheck
from sidecar.idxmap import CacheHelper, MappingEvent, NamedMapping
from sidecar.kvstore.etcd import EtcdConfig, EtcdPlugin
from tests._wait import until
from tests.idxmap.proxy import Partition
from tests.servers.etcd import EtcdServer

Doc = dict[str, Any]


def by_state(doc: Doc) -> dict[str, Any]:
    return {"state": doc["state"], "zone": doc.get("zone", [])}


async def etcdctl(server: EtcdServer, *args: str) -> str:
    return await asyncio.to_thread(server.etcdctl, *args)


async def put(server: EtcdServer, key: str, value: Doc | str) -> None:
    await etcdctl(server, "put", key, value if isinstance(value, str) else json.dumps(value))


async def revision(server: EtcdServer) -> int:
    out = await etcdctl(server, "get", "/", "--prefix", "--keys-only", "--limit", "1", "-w", "json")
    return int(json.loads(out)["header"]["revision"])


def unique_prefix() -> str:
    return f"/idxmap-test/{uuid.uuid4().hex[:8]}/"


@pytest.fixture
async def client(etcd_server: EtcdServer) -> AsyncIterator[Any]:
    host, _, port = etcd_server.endpoint.rpartition(":")
    async with aetcd.Client(host=host, port=int(port), timeout=3) as etcd:
        yield etcd


async def started_etcd_plugin(endpoint: str, statuscheck: StatusCheck) -> EtcdPlugin:
    plugin = EtcdPlugin(EtcdConfig(endpoints=[endpoint], dial_timeout=0.5, operation_timeout=1.0,
                                   lease_ttl=5.0, reconnect_interval=0.3), statuscheck)
    await plugin.init()
    await plugin.after_init()
    async with asyncio.timeout(10):
        await plugin.wait_connected()
    return plugin


def state_of(statuscheck: StatusCheck, name: str) -> PluginState | None:
    status = statuscheck.agent_status().plugins.get(name)
    return status.state if status else None


async def test_cache_follows_puts_overwrites_and_deletes_in_order_with_exact_index(
        etcd_server: EtcdServer, client: Any) -> None:
    prefix = unique_prefix()
    await put(etcd_server, prefix + "a", {"state": "OK", "zone": ["z1"]})
    await put(etcd_server, prefix + "b", {"state": "ERROR"})
    await put(etcd_server, prefix + "broken", "{not json")
    await put(etcd_server, prefix.rstrip("/") + "-sibling/x", {"state": "OK"})  # not under prefix
    mapping: NamedMapping[Doc] = NamedMapping("agents", by_state)
    async with CacheHelper(mapping, client, prefix) as cache:
        async with asyncio.timeout(10):
            await cache.wait_synced()
        assert sorted(mapping.list_all_names()) == ["a", "b"]
        assert cache.decode_errors == 1  # "broken" is left out, not fatal
        assert mapping.list_names("state", "OK") == ("a",)
        assert mapping.list_names("zone", "z1") == ("a",)

        async with mapping.events("test") as stream:

            async def next_event() -> MappingEvent[Doc]:
                async with asyncio.timeout(5):
                    return await stream.get()

            await client.put((prefix + "c").encode(), b'{"state": "OK", "zone": ["z1"]}')
            event = await next_event()
            assert (event.name, event.value, event.update) == ("c", {"state": "OK", "zone": ["z1"]},
                                                               False)
            assert mapping.list_names("state", "OK") == ("a", "c")
            assert mapping.list_names("zone", "z1") == ("a", "c")

            await client.put((prefix + "a").encode(), b'{"state": "ERROR"}')  # moves index
            event = await next_event()
            assert event.update and event.prev_value == {"state": "OK", "zone": ["z1"]}
            assert mapping.list_names("state", "OK") == ("c",)
            assert mapping.list_names("state", "ERROR") == ("b", "a")
            assert mapping.list_names("zone", "z1") == ("c",)

            await client.delete((prefix + "b").encode())
            event = await next_event()
            assert event.deleted and event.name == "b" and event.prev_value == {"state": "ERROR"}
            assert mapping.list_names("state", "ERROR") == ("a",)

            await client.put((prefix + "c").encode(), b"[1, 2")  # now undecodable: left out
            event = await next_event()
            assert event.deleted and event.name == "c"
            assert mapping.list_names("state", "OK") == ()
            assert mapping.list_names("zone", "z1") == ()
            assert cache.decode_errors == 2

            # A value the index function rejects is left out too; the cache goes on.
            await client.put((prefix + "odd").encode(), b'{"no-state": true}')
            await client.put((prefix + "d").encode(), b'{"state": "OK"}')
            event = await next_event()
            assert event.name == "d" and "odd" not in mapping
            assert cache.decode_errors == 3

            # Many changes in one transaction arrive in order, each applied.
            ops = [client.transactions.put((prefix + f"t{i}").encode(), b'{"state": "INIT"}')
                   for i in range(20)]
            await client.transaction(compare=[], success=ops, failure=[])
            names = [(await next_event()).name for _ in range(20)]
            assert names == [f"t{i}" for i in range(20)]
            assert len(mapping.list_names("state", "INIT")) == 20
        assert cache.resyncs == 1 and cache.events == 26
        assert cache.revision == (await client.get((prefix + "t19").encode())).mod_revision
    assert not cache.synced
    assert mapping.list_names("state", "ERROR") == ("a",)  # closing keeps the contents


async def test_protobuf_values_and_custom_names(etcd_server: EtcdServer, client: Any) -> None:
    prefix = unique_prefix()
    for name, text in (("x", "red"), ("y", "blue"), ("z", "red")):
        await client.put(f"{prefix}{name}/color".encode(),
                         wrappers_pb2.StringValue(value=text).SerializeToString())
    await client.put(f"{prefix}x/other".encode(), b"ignored")
    mapping: NamedMapping[wrappers_pb2.StringValue] = NamedMapping(
        "colors", lambda v: {"color": v.value})

    def name_of(key: str) -> str | None:
        rest = key[len(prefix):]
        return rest.removesuffix("/color") if rest.endswith("/color") else None

    async with CacheHelper(mapping, client, prefix, decode=wrappers_pb2.StringValue,
                           name_of=name_of, page_size=2) as cache:  # pages of 2: three reads
        async with asyncio.timeout(10):
            await cache.wait_synced()
        assert mapping.list_names("color", "red") == ("x", "z")
        assert mapping.get_value("y") == wrappers_pb2.StringValue(value="blue")
        await client.put(f"{prefix}y/color".encode(),
                         wrappers_pb2.StringValue(value="red").SerializeToString())
        await until(lambda: len(mapping.list_names("color", "red")) == 3, 5, "y turned red")
        assert cache.decode_errors == 0


async def test_changes_made_during_an_outage_are_reconciled_on_reconnect(
        own_etcd: EtcdServer) -> None:
    prefix = unique_prefix()
    for name in "abc":
        await put(own_etcd, prefix + name, {"state": "OK"})
    statuscheck = StatusCheck()
    etcd = await started_etcd_plugin(own_etcd.endpoint, statuscheck)
    mapping: NamedMapping[Doc] = NamedMapping("agents", by_state)
    cache = CacheHelper(mapping, etcd, prefix, name="agents-cache", statuscheck=statuscheck)
    try:
        await cache.start()
        assert state_of(statuscheck, "agents-cache") in (PluginState.INIT, PluginState.OK)
        async with asyncio.timeout(10):
            await cache.wait_synced()
        assert state_of(statuscheck, "agents-cache") is PluginState.OK
        # A cache of a shared etcd only reports unless it is given groups.
        assert statuscheck.agent_status().plugins["agents-cache"].groups == frozenset()

        await asyncio.to_thread(own_etcd.stop)
        await until(lambda: state_of(statuscheck, "agents-cache") is PluginState.ERROR, 10,
                    "cache ERROR while etcd is down")
        assert not cache.synced
        assert "not following etcd" in (cache.last_error or "")
        assert sorted(mapping.list_all_names()) == ["a", "b", "c"]  # still readable meanwhile

        await asyncio.to_thread(own_etcd.start)
        # Another client changes the prefix right after the restart.
        await etcdctl(own_etcd, "del", prefix + "b")
        await put(own_etcd, prefix + "c", {"state": "ERROR"})
        await put(own_etcd, prefix + "d", {"state": "ERROR"})

        await until(lambda: sorted(mapping.list_all_names()) == ["a", "c", "d"]
                    and mapping.list_names("state", "ERROR") == ("c", "d"), 15,
                    "changes made while cut off reconciled")
        assert mapping.list_names("state", "OK") == ("a",)
        await until(lambda: state_of(statuscheck, "agents-cache") is PluginState.OK, 10,
                    "cache OK again")
        assert cache.resyncs == 1 and cache.resumes >= 1  # history replayed, not re-read
    finally:
        await cache.close()
        await etcd.close()


async def mod_revision(server: EtcdServer, key: str) -> int:
    out = await etcdctl(server, "get", key, "-w", "json")
    return int(json.loads(out)["kvs"][0]["mod_revision"])


async def test_a_replaced_store_is_read_again_and_stale_names_removed(
        own_etcd: EtcdServer) -> None:
    prefix = unique_prefix()
    await put(own_etcd, prefix + "x", {"state": "OK"})
    old_x_revision = await mod_revision(own_etcd, prefix + "x")
    for i in range(30):  # push the revision well past what the new store will have
        await put(own_etcd, prefix + f"old{i % 3}", {"state": "OK", "n": i})
    partition = await Partition(own_etcd.endpoint).start()
    statuscheck = StatusCheck()
    etcd = await started_etcd_plugin(partition.endpoint, statuscheck)
    mapping: NamedMapping[Doc] = NamedMapping("agents", by_state)
    cache = CacheHelper(mapping, etcd, prefix)
    try:
        await cache.start()
        async with asyncio.timeout(10):
            await cache.wait_synced()
        assert sorted(mapping.list_all_names()) == ["old0", "old1", "old2", "x"]

        def wipe_and_start() -> None:  # etcd restored empty: same address, new history
            own_etcd.stop()
            shutil.rmtree(Path(own_etcd.data_dir) / "data")
            own_etcd.start()

        partition.cut()  # the cache sees the new store only once it is written
        await asyncio.to_thread(wipe_and_start)
        # The same key at the same revision as before, with another value: only a read of
        # the new store can tell.
        await put(own_etcd, prefix + "x", {"state": "ERROR"})
        assert await mod_revision(own_etcd, prefix + "x") == old_x_revision
        await put(own_etcd, prefix + "old1", {"state": "ERROR"})
        await put(own_etcd, prefix + "new", {"state": "OK"})
        partition.heal()
        await until(lambda: sorted(mapping.list_all_names()) == ["new", "old1", "x"], 15,
                    "stale names removed")
        assert mapping.list_names("state", "OK") == ("new",)
        assert sorted(mapping.list_names("state", "ERROR")) == ["old1", "x"]
        assert cache.resyncs == 2
    finally:
        await cache.close()
        await etcd.close()
        await partition.close()


async def test_a_compacted_watch_triggers_a_resync(own_etcd: EtcdServer) -> None:
    prefix = unique_prefix()
    for name in "abc":
        await put(own_etcd, prefix + name, {"state": "OK"})
    partition = await Partition(own_etcd.endpoint).start()
    statuscheck = StatusCheck()
    etcd = await started_etcd_plugin(partition.endpoint, statuscheck)
    mapping: NamedMapping[Doc] = NamedMapping("agents", by_state)
    cache = CacheHelper(mapping, etcd, prefix, statuscheck=statuscheck)
    try:
        await cache.start()
        async with asyncio.timeout(10):
            await cache.wait_synced()
        assert cache.resyncs == 1

        partition.cut()  # only this client is cut off; etcd goes on
        await until(lambda: not cache.synced, 10, "cache notices it is cut off")
        await etcdctl(own_etcd, "del", prefix + "a")
        await put(own_etcd, prefix + "b", {"state": "ERROR"})
        await put(own_etcd, prefix + "e", {"state": "INIT"})
        await etcdctl(own_etcd, "compact", str(await revision(own_etcd)))
        partition.heal()

        await until(lambda: sorted(mapping.list_all_names()) == ["b", "c", "e"], 15,
                    "resynced after compaction")
        assert cache.compactions == 1 and cache.resyncs == 2
        assert mapping.list_names("state", "ERROR") == ("b",)
        assert mapping.list_names("state", "INIT") == ("e",)
        assert mapping.list_names("state", "OK") == ("c",)
        await until(lambda: cache.synced, 10, "following again")

        # The watch goes on after the resync.
        await put(own_etcd, prefix + "f", {"state": "OK"})
        await until(lambda: "f" in mapping, 5, "change after the resync")

        partition.cut()
        await until(lambda: not cache.synced, 10, "cut off again")
        # Closing while etcd is unreachable does not hang: a close that waited for etcd
        # would wait until the partition heals (never); a working close takes milliseconds.
        try:
            async with asyncio.timeout(10):
                await cache.close()
        except TimeoutError:
            pytest.fail("closing the cache hung while etcd was unreachable")
    finally:
        await cache.close()
        await etcd.close()
        await partition.close()


async def test_bad_arguments_are_clear_errors(client: Any) -> None:
    mapping: NamedMapping[Doc] = NamedMapping("m")
    with pytest.raises(ValueError, match="non-empty key prefix"):
        CacheHelper(mapping, client, "")
    with pytest.raises(ValueError, match="page_size"):
        CacheHelper(mapping, client, "/x/", page_size=0)

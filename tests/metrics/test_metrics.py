"""``GET /metrics`` of an in-process sidecar, parsed with prometheus_client's own parsers."""

from __future__ import annotations

import asyncio
import gzip
import json
import sys
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import prometheus_client
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from sidecar.agent import Agent
from sidecar.builder import Options, Sidecar, build
from sidecar.health.statuscheck import PluginState
from tests._wait import until
from tests.servers._util import free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Running:
    sidecar: Sidecar
    agent: Agent
    url: str
    client: aiohttp.ClientSession

    async def scrape(self) -> tuple[Samples, set[str]]:
        async with self.client.get(self.url + "/metrics") as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await reply.text()
        samples: Samples = {}
        families: set[str] = set()
        for family in text_string_to_metric_families(text):
            families.add(family.name)
            for sample in family.samples:
                samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return samples, families

    async def value(self, name: str, **labels: str) -> float | None:
        samples, _ = await self.scrape()
        return samples.get((name, frozenset(labels.items())))

    async def state(self, name: str, **labels: str) -> str | None:
        """The ``state`` label of the one series of ``name`` at 1 (None when there is no
        series); every state has its series, the others at 0."""
        samples, _ = await self.scrape()
        series = {dict(key)["state"]: value for (sample, key), value in samples.items()
                  if sample == name and labels.items() <= dict(key).items()}
        if not series:
            return None
        assert set(series) == {"init", "ok", "error"}, series
        current = [state for state, value in series.items() if value == 1]
        assert len(current) == 1 and sum(series.values()) == 1, series
        return current[0]

    async def status(self, method: str, path: str) -> int:
        async with self.client.request(method, self.url + path) as reply:
            await reply.read()
            return reply.status


async def start(config_dir: Path, **files: str) -> Running:
    # Every scrape renders anew: these tests read values right after changing them (the
    # render cache that bounds a /metrics flood has tests of its own, in tests/faults).
    files.setdefault("http", "endpoint: 127.0.0.1:0\nrender-cache: 0s\n")
    files.setdefault("statuscheck", "probe-interval: 100ms\nprobe-timeout: 1s\n")
    for name, text in files.items():
        (config_dir / f"{name}.conf").write_text(text)
    sidecar = build(Options(config_dir=str(config_dir), env={}))
    agent = sidecar.agent()
    await agent.start()
    return Running(sidecar, agent, f"http://127.0.0.1:{sidecar.rest.port}",
                   aiohttp.ClientSession())


async def stop(run: Running) -> None:
    await run.client.close()
    await run.agent.stop()


@pytest.fixture
async def running(config_dir: Path) -> AsyncIterator[Running]:
    run = await start(config_dir)
    yield run
    await stop(run)


async def test_metrics_parse_and_cover_the_sidecar(running: Running) -> None:
    samples, families = await running.scrape()
    assert {"cninfra_agent_state", "cninfra_agent_ready", "cninfra_agent_live",
            "cninfra_plugin_state", "cninfra_plugin_state_changes", "cninfra_build_info",
            "cninfra_probe_duration_seconds", "cninfra_http_requests",
            "cninfra_http_request_duration_seconds"} <= families
    # prometheus_client's global registry: process and runtime metrics come along.
    assert {"process_resident_memory_bytes", "python_info"} <= families
    assert samples[("cninfra_agent_state", frozenset({("state", "ok")}))] == 1
    assert samples[("cninfra_agent_state", frozenset({("state", "error")}))] == 0
    assert samples[("cninfra_agent_ready", frozenset())] == 1


async def test_plugin_gauge_follows_state_changes(running: Running) -> None:
    statuscheck = running.sidecar.statuscheck
    statuscheck.register("cache")
    assert await running.state("cninfra_plugin_state", plugin="cache") == "init"
    assert await running.state("cninfra_agent_state") == "init"

    statuscheck.report_state_change("cache", PluginState.ERROR, "disk full")
    assert await running.state("cninfra_plugin_state", plugin="cache") == "error"
    assert await running.state("cninfra_agent_state") == "error"
    assert await running.value("cninfra_agent_ready") == 0
    assert await running.value("cninfra_agent_live") == 0

    statuscheck.report_state_change("cache", PluginState.OK)
    assert await running.state("cninfra_plugin_state", plugin="cache") == "ok"
    assert await running.state("cninfra_agent_state") == "ok"
    statuscheck.report_state_change("cache", PluginState.ERROR, "again")
    statuscheck.report_state_change("cache", PluginState.OK)
    assert await running.value("cninfra_plugin_state_changes_total", plugin="cache",
                               state="error") == 2
    assert await running.value("cninfra_plugin_state_changes_total", plugin="cache",
                               state="ok") == 2

    statuscheck.unregister("cache")
    assert await running.state("cninfra_plugin_state", plugin="cache") is None


async def test_probe_durations_per_plugin(running: Running) -> None:
    async def slow_probe() -> None:
        await asyncio.sleep(0.05)

    running.sidecar.statuscheck.register("slow", slow_probe)

    async def probed_twice() -> bool:
        count = await running.value("cninfra_probe_duration_seconds_count", plugin="slow")
        return count is not None and count >= 2

    await until(probed_twice, 5, "two probe rounds observed")
    samples, _ = await running.scrape()
    count = samples[("cninfra_probe_duration_seconds_count", frozenset({("plugin", "slow")}))]
    total = samples[("cninfra_probe_duration_seconds_sum", frozenset({("plugin", "slow")}))]
    assert total >= 0.05 * count
    fast = samples[("cninfra_probe_duration_seconds_bucket",
                    frozenset({("plugin", "slow"), ("le", "0.025")}))]
    assert fast == 0


async def test_http_requests_by_route_method_and_status(running: Running) -> None:
    for _ in range(3):
        assert await running.status("GET", "/readiness") == 200
    assert await running.status("GET", "/no/such/page") == 404
    assert await running.status("PUT", "/log/sidecar.agent/loud") == 400
    assert await running.status("PUT", "/log/no.such/debug") == 404
    assert await running.status("POST", "/readiness") == 405
    samples, _ = await running.scrape()

    def count(route: str, method: str, status: str) -> float:
        key = frozenset({("route", route), ("method", method), ("status", status)})
        return samples.get(("cninfra_http_requests_total", key), 0)

    assert count("/readiness", "GET", "200") == 3
    assert count("unmatched", "GET", "404") == 1  # raw paths never become label values
    assert count("/log/{logger}/{level}", "PUT", "400") == 1
    assert count("/log/{logger}/{level}", "PUT", "404") == 1
    assert count("unmatched", "POST", "405") == 1
    assert samples[("cninfra_http_request_duration_seconds_count",
                    frozenset({("route", "/readiness")}))] == 3
    buckets = sorted(
        (float(dict(labels)["le"]), value) for (name, labels), value in samples.items()
        if name == "cninfra_http_request_duration_seconds_bucket"
        and ("route", "/readiness") in labels)
    assert buckets[-1] == (float("inf"), 3.0)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert buckets[-2][0] == 10.0


async def test_log_level_changes_are_counted_by_cause(running: Running) -> None:
    assert await running.status("PUT", "/log/sidecar.agent/debug") == 200
    assert await running.status("PUT", "/log/sidecar.agent/debug?ttl=100ms") == 200
    assert await running.status("DELETE", "/log/sidecar.agent") == 200
    assert await running.status("PUT", "/log/sidecar.rest/debug?ttl=100ms") == 200

    async def expired() -> bool:
        return await running.value("cninfra_log_level_changes_total", logger="sidecar.rest",
                                   cause="expired") == 1

    await until(expired, 5, "the ttl expiry counted")
    assert await running.value("cninfra_log_level_changes_total", logger="sidecar.agent",
                               cause="set") == 2
    assert await running.value("cninfra_log_level_changes_total", logger="sidecar.agent",
                               cause="reset") == 1


async def test_openmetrics_gzip_and_name_filter(running: Running) -> None:
    headers = {"Accept": "application/openmetrics-text; version=1.0.0",
               "Accept-Encoding": "gzip"}
    async with running.client.get(running.url + "/metrics", headers=headers,
                                  auto_decompress=False) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("application/openmetrics-text")
        assert reply.headers["Content-Encoding"] == "gzip"
        text = gzip.decompress(await reply.read()).decode()
    names = {family.name for family in parse_om(text)}  # type: ignore[no-untyped-call]
    assert "cninfra_agent_state" in names

    async with running.client.get(running.url + "/metrics",
                                  params=[("name[]", "cninfra_agent_state")]) as reply:
        only = {f.name for f in text_string_to_metric_families(await reply.text())}
    assert only == {"cninfra_agent_state"}


@pytest.mark.parametrize(("accept_encoding", "coding"), [
    ("deflate, gzip, br, zstd", "gzip"),    # curl --compressed: aiohttp's own pick was deflate
    ("gzip", "gzip"),                       # Prometheus
    ("gzip;q=0.5, deflate;q=0.8", "deflate"),
    ("gzip;q=0, deflate", "deflate"),
    ("deflate;q=0, gzip", "gzip"),          # a refused coding is never used
    ("br", None),
    ("identity", None),
    ("*", "gzip"),
])
async def test_metrics_prefer_gzip_when_the_client_accepts_it(
        running: Running, accept_encoding: str, coding: str | None) -> None:
    async with running.client.get(running.url + "/metrics", auto_decompress=False,
                                  headers={"Accept-Encoding": accept_encoding}) as reply:
        assert reply.status == 200
        assert reply.headers.get("Content-Encoding") == coding
        body = await reply.read()
    text = (gzip.decompress(body) if coding == "gzip"
            else zlib.decompress(body) if coding == "deflate" else body).decode()
    assert "cninfra_agent_state" in {f.name for f in text_string_to_metric_families(text)}


async def test_user_metrics_in_the_global_registry_are_served(running: Running) -> None:
    jobs = prometheus_client.Counter("userplugin_jobs", "Jobs done by a user plugin.")
    try:
        jobs.inc(3)
        assert await running.value("userplugin_jobs_total") == 3
    finally:
        prometheus_client.REGISTRY.unregister(jobs)


async def test_etcd_publish_errors_are_counted(config_dir: Path) -> None:
    # etcd is configured but nothing listens there: the agent starts, etcd is ERROR and
    # every status write fails and is counted.
    run = await start(config_dir, etcd=f"endpoints: ['127.0.0.1:{free_port()}']\n"
                                       "dial-timeout: 200ms\nreconnect-interval: 200ms\n")
    try:
        async def errors_grow() -> bool:
            errors = await run.value("cninfra_status_publish_errors_total")
            return errors is not None and errors >= 2

        await until(errors_grow, 10, "publish errors counted")
        assert await run.value("cninfra_status_publish_commits_total") == 0
        assert await run.state("cninfra_plugin_state", plugin="etcd") == "error"
        assert await run.state("cninfra_agent_state") == "error"
        # etcd only reports: both probes answer 200, and the groups say why.
        assert await run.value("cninfra_agent_live") == 1
        assert await run.value("cninfra_agent_ready") == 1
        assert await run.state("cninfra_health_group_state", group="readiness") == "ok"
        assert await run.value("cninfra_health_group_up", group="liveness") == 1
    finally:
        await stop(run)


async def test_metrics_conf_moves_or_disables_the_endpoint(config_dir: Path) -> None:
    run = await start(config_dir, metrics="path: /prom\nhttp-requests: false\n")
    try:
        assert await run.status("GET", "/metrics") == 404
        async with run.client.get(run.url + "/prom") as reply:
            names = {f.name for f in text_string_to_metric_families(await reply.text())}
        assert "cninfra_agent_state" in names
        assert "cninfra_http_requests" not in names
    finally:
        await stop(run)
    run = await start(config_dir, metrics="enabled: false\n")
    try:
        assert await run.status("GET", "/metrics") == 404
        assert await run.status("PUT", "/log/sidecar.agent/debug") == 200  # no counter, no harm
    finally:
        await stop(run)


#: Families of prometheus_client's global registry (``default-registry: true``): the
#: sidecar's own process, not its programs.
GLOBAL_PREFIXES = ("process_", "python_")


async def test_every_family_is_named_cninfra_and_none_has_created_samples(
        running: Running) -> None:
    # A Histogram of prometheus_client's own (the probe durations) once added a
    # ``_created`` series per label set; a Counter of user code would too.
    async def probe() -> None:
        pass

    running.sidecar.statuscheck.register("slow", probe)
    jobs = prometheus_client.Counter("userplugin_jobs", "Jobs done by a user plugin.")
    try:
        jobs.inc()

        async def probed() -> bool:
            count = await running.value("cninfra_probe_duration_seconds_count", plugin="slow")
            return bool(count)

        await until(probed, 5, "the pull probe observed")
        samples, families = await running.scrape()
    finally:
        prometheus_client.REGISTRY.unregister(jobs)
    assert not [name for name, _ in samples if name.endswith("_created")]
    ours = {f for f in families if not f.startswith((*GLOBAL_PREFIXES, "userplugin_"))}
    assert ours and all(name.startswith("cninfra_") for name in ours), sorted(ours)


async def test_a_level_changed_at_run_time_shows_until_it_is_back(running: Running) -> None:
    override = "cninfra_log_level_override_timestamp_seconds"
    expiry = "cninfra_log_level_override_expiry_timestamp_seconds"
    before = time.time()
    assert await running.status("PUT", "/log/sidecar.agent/debug") == 200
    set_at = await running.value(override, logger="sidecar.agent", level="debug")
    assert set_at is not None and before - 1 <= set_at <= time.time() + 1
    assert await running.value(expiry, logger="sidecar.agent", level="debug") is None

    # With a ttl, its end is there too; and the level is the one in force.
    assert await running.status("PUT", "/log/sidecar.agent/trace?ttl=1h") == 200
    ends = await running.value(expiry, logger="sidecar.agent", level="trace")
    assert ends is not None and abs(ends - (time.time() + 3600)) < 60
    assert await running.value(override, logger="sidecar.agent", level="debug") is None

    assert await running.status("DELETE", "/log/sidecar.agent") == 200
    samples, _ = await running.scrape()
    assert not [labels for name, labels in samples if name in (override, expiry)]

    # A ttl that runs out takes the series away by itself.
    assert await running.status("PUT", "/log/sidecar.rest/debug?ttl=100ms") == 200

    async def reverted() -> bool:
        return await running.value(override, logger="sidecar.rest", level="debug") is None

    await until(reverted, 5, "the override gone once its ttl expired")


BUSY = ("import time\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
        "blob = bytearray(32 << 20)\n"
        "time.sleep(3600)\n")


async def test_programs_have_cpu_memory_restarts_and_uptime(config_dir: Path) -> None:
    supervisor = {"programs": [
        {"name": "busy", "executable-path": sys.executable, "executable-args": ["-c", BUSY]},
        {"name": "crashing", "executable-path": sys.executable,
         "executable-args": ["-c", "raise SystemExit(3)"], "restarts": -1,
         "backoff-base": "50ms", "backoff-cap": "100ms"},
    ]}
    run = await start(config_dir, supervisor=json.dumps(supervisor))
    try:
        async def busy_done() -> bool:
            cpu = await run.value("cninfra_program_cpu_seconds_total", program="busy")
            rss = await run.value("cninfra_program_resident_memory_bytes", program="busy")
            return cpu is not None and cpu >= 0.25 and rss is not None and rss >= 32 << 20

        await until(busy_done, 15, "the busy program's CPU and memory")
        samples, _ = await run.scrape()
        busy = frozenset({("program", "busy")})
        assert samples[("cninfra_program_up", busy)] == 1
        assert samples[("cninfra_program_uptime_seconds", busy)] > 0
        assert samples[("cninfra_program_restarts_total", busy)] == 0
        assert samples[("cninfra_program_crash_looping", busy)] == 0
        # The sidecar's own process_* is not the program's.
        assert samples[("process_resident_memory_bytes", frozenset())] != \
            samples[("cninfra_program_resident_memory_bytes", busy)]

        async def looping() -> bool:
            restarts = await run.value("cninfra_program_restarts_total", program="crashing")
            return (restarts or 0) >= 3 and await run.value(
                "cninfra_program_crash_looping", program="crashing") == 1

        await until(looping, 15, "the crashing program counted as crash-looping")
        assert await run.state("cninfra_plugin_state", plugin="program:crashing") == "error"
        assert await run.value("cninfra_supervisor_program_healthy", program="crashing") == 0

        # The reads of one scrape are bounded: past the limit (here none at all), programs
        # go without CPU and memory, and the rest of their series stay.
        from sidecar.exec.processmanager.metrics import ProcessCollector

        assert run.sidecar.process_manager is not None
        manager = run.sidecar.process_manager.manager
        bounded = ProcessCollector(manager.get_all_processes, sample_limit=0)
        programs = {family.name: [s.labels["program"] for s in family.samples]
                    for family in bounded.collect()}
        assert programs["cninfra_program_cpu_seconds"] == []
        assert programs["cninfra_program_resident_memory_bytes"] == []
        assert programs["cninfra_program_up"] == ["busy", "crashing"]

        # A program that is not running has no CPU or memory sample (nothing to read).
        async with run.client.post(run.url + "/supervisor/programs/busy/stop") as reply:
            assert reply.status == 200, await reply.text()

        async def stopped() -> bool:
            samples, _ = await run.scrape()
            return (samples.get(("cninfra_program_up", busy)) == 0
                    and ("cninfra_program_cpu_seconds_total", busy) not in samples)

        await until(stopped, 10, "the stopped program without CPU and memory samples")
    finally:
        await stop(run)

"""Health groups: which plugins /liveness, /readiness and /health/<group> count, as
statuscheck.conf says, while the agent state stays the AND of every plugin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sidecar.builder import BUILTIN_CHECKS, CHECK_FAMILIES, Options, Sidecar, build
from sidecar.config import ConfigError, ConfigValueError, decode
from sidecar.health.statuscheck import (
    LIVENESS,
    READINESS,
    PluginState,
    StatusCheck,
    StatusCheckConfig,
    check_names,
)
from sidecar.health.statuscheck.groups import GroupRules
from tests._wait import until
from tests.core.test_openapi import every_plugin_config

OK, INIT, ERROR = PluginState.OK, PluginState.INIT, PluginState.ERROR


def config(**data: Any) -> StatusCheckConfig:
    return decode(StatusCheckConfig, data, "statuscheck.conf")


def started(conf: StatusCheckConfig | None = None) -> StatusCheck:
    check = StatusCheck(conf)
    check.mark_started()
    return check


def test_a_plugin_that_only_reports_fails_no_probe_but_the_agent_state_says_error() -> None:
    check = started()
    check.register("etcd", groups=())
    check.report_state_change("etcd", ERROR, "etcd unreachable")
    check.report_state_change("web", OK)
    status = check.agent_status()
    assert status.state is ERROR  # the AND of all plugins, as the seed has it
    assert status.ready and status.live
    readiness = status.groups[READINESS]
    assert (readiness.state, readiness.counted, readiness.left_out) == (OK, ("web",), ("etcd",))
    body = status.probe_body(READINESS)
    assert body["state"] == 2 and body["plugins"]["etcd"]["error"] == "etcd unreachable"
    assert body["group"] == {"name": "readiness", "state": 1, "counted": ["web"],
                             "left_out": ["etcd"]}


def test_a_user_plugin_counts_for_both_probes_and_fatal_false_for_readiness_only() -> None:
    check = started()
    check.register("cache", fatal=False)
    check.report_state_change("cache", ERROR, "cold")
    status = check.agent_status()
    assert status.live and not status.ready
    check.report_state_change("core", ERROR, "broken")  # registered by its report: both
    status = check.agent_status()
    assert not status.live and not status.ready
    assert status.groups[LIVENESS].counted == ("core",)


def test_readiness_waits_for_the_start_but_liveness_does_not() -> None:
    check = StatusCheck()
    check.register("web")
    status = check.agent_status()
    assert status.groups[READINESS].state is INIT and not status.ready
    assert status.groups[LIVENESS].state is INIT and status.live
    check.report_state_change("web", OK)
    assert not check.agent_status().ready  # the agent has not started every plugin yet
    check.mark_started()
    assert check.agent_status().ready


def test_include_adds_to_the_defaults_and_exclude_wins() -> None:
    check = started(config(readiness={"include": ["etcd", "kafka"], "exclude": ["kafka"]},
                           liveness={"include": ["program:*"]}))
    check.register("etcd", groups=())
    check.register("kafka", groups=())
    check.register("program:web", fatal=False)
    check.register("web")
    plugins = check.agent_status().plugins
    assert plugins["etcd"].groups == {READINESS}  # cn-infra's readiness, for etcd
    assert plugins["kafka"].groups == frozenset()
    assert plugins["program:web"].groups == {LIVENESS, READINESS}
    assert plugins["web"].groups == {LIVENESS, READINESS}
    check.report_state_change("etcd", ERROR, "etcd unreachable")
    assert not check.agent_status().ready and check.agent_status().live


def test_include_star_is_cn_infras_readiness_of_every_plugin() -> None:
    check = started(config(readiness={"include": ["*"]}))
    for name in ("etcd", "kafka", "k8s", "fleet"):
        check.register(name, groups=())
    assert set(check.agent_status().groups[READINESS].counted) == {"etcd", "kafka", "k8s",
                                                                   "fleet"}


def test_non_fatal_is_the_liveness_exclude_list() -> None:
    check = started(config(**{"non-fatal": ["core"], "liveness": {"exclude": ["other"]}}))
    check.register("core", fatal=True)  # the operator's list wins over the plugin
    check.report_state_change("core", ERROR, "broken")
    status = check.agent_status()
    assert status.live and not status.ready
    assert not status.plugins["core"].fatal
    assert status.groups[LIVENESS].left_out == ("core",)


def test_an_extra_group_counts_what_include_names() -> None:
    check = started(config(groups={"startup": {"include": ["*"], "exclude": ["k8s"]}}))
    check.register("k8s", groups=())
    check.register("etcd", groups=())
    assert list(check.agent_status().groups) == ["liveness", "readiness", "startup"]
    startup = check.agent_status().groups["startup"]
    assert (startup.state, startup.counted, startup.left_out) == (INIT, ("etcd",), ("k8s",))
    check.report_state_change("etcd", OK)
    assert check.agent_status().groups["startup"].up
    check.report_state_change("k8s", ERROR, "no API server")
    assert check.agent_status().groups["startup"].up


def test_reregistering_applies_a_changed_declaration() -> None:
    check = started()
    check.register("program:web", fatal=False)
    check.report_state_change("program:web", ERROR, "crash-looping")
    assert check.agent_status().live
    check.register("program:web", fatal=True)  # fatal: true applied in place
    status = check.agent_status()
    assert status.plugins["program:web"].state is ERROR and not status.live


@pytest.mark.parametrize(("data", "message"), [
    ({"readiness": {"exlude": ["etcd"]}},
     "statuscheck.conf: readiness.exlude: unknown key (did you mean 'exclude'?)"),
    ({"groups": {"readiness": {"include": ["*"]}}},
     "groups.readiness: readiness is a top-level key of its own"),
    ({"groups": {"Start Up": {"include": ["*"]}}}, "groups.Start Up: a group name is"),
    ({"groups": {"startup": {"exclude": ["etcd"]}}},
     "groups.startup.include: name the plugins this group counts"),
    ({"liveness": {"grace": {"etcd": "soon"}}},
     "statuscheck.conf: liveness.grace.etcd: expected a duration"),
    ({"readiness": {"include": [""]}}, "readiness.include[0]: a plugin name must not be empty"),
    ({"readiness": {"include": "etcd"}}, "readiness.include: expected a list"),
])
def test_bad_groups_are_config_errors_naming_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigValueError) as caught:
        config(**data)
    assert message in str(caught.value)


def test_an_unknown_plugin_name_gets_a_did_you_mean() -> None:
    known = {"etcd", "kafka", "k8s", "fleet", "web"}
    check_names(config(readiness={"include": ["etcd", "program:web", "process:*", "we?"]}),
                "statuscheck.conf", known, ("program:", "process:"))
    with pytest.raises(ConfigValueError) as caught:
        check_names(config(**{"non-fatal": ["kafka"], "readiness": {"include": ["etdc"]}}),
                    "/etc/sidecar/statuscheck.conf", known, ("program:",))
    text = str(caught.value)
    assert text.startswith("/etc/sidecar/statuscheck.conf: readiness.include[0]: no plugin "
                           "'etdc' (did you mean 'etcd'?)")
    assert "program:<name>" in text
    with pytest.raises(ConfigValueError, match=r"grace\.program:: no plugin 'program:'"):
        check_names(config(grace={"program:": "1s"}), "statuscheck.conf", known, ("program:",))


def test_the_builder_checks_names_against_its_plugins_and_yours(tmp_path: Path) -> None:
    (tmp_path / "http.conf").write_text("endpoint: 127.0.0.1:0\n")
    (tmp_path / "statuscheck.conf").write_text(
        "readiness:\n  include: [etcd, cache]\nliveness:\n  exclude: ['program:*']\n")
    sidecar = build(Options(config_dir=str(tmp_path), env={}))

    class Cache:
        name = "cache"
        deps = ()

        async def init(self) -> None: ...
        async def after_init(self) -> None: ...
        async def close(self) -> None: ...

    with pytest.raises(ConfigError, match=r"statuscheck.conf: readiness.include\[1\]: no "
                                          r"plugin 'cache'"):
        sidecar.agent()
    sidecar.agent(Cache())  # etcd is built in: named although etcd.conf is absent


# -- over HTTP ----------------------------------------------------------------------


@pytest.fixture
async def served(config_dir: Path) -> AsyncIterator[tuple[Sidecar, str]]:
    (config_dir / "http.conf").write_text("endpoint: 127.0.0.1:0\n")
    (config_dir / "statuscheck.conf").write_text(
        "groups:\n  startup:\n    include: ['*']\n    exclude: [etcd]\n")
    sidecar = build(Options(config_dir=str(config_dir), env={}))
    agent = sidecar.agent()
    await agent.start()
    try:
        yield sidecar, f"http://127.0.0.1:{sidecar.rest.port}"
    finally:
        await agent.stop()


async def get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as client, client.get(url) as reply:
        return reply.status, await reply.json()


async def test_each_probe_answers_for_its_group(served: tuple[Sidecar, str]) -> None:
    sidecar, url = served
    check = sidecar.statuscheck
    check.register("etcd", groups=())
    check.report_state_change("etcd", ERROR, "etcd unreachable")
    check.report_state_change("web", OK)
    status, body = await get(url + "/readiness")
    assert status == 200
    assert body["state"] == 2 and body["plugins"]["etcd"]["state"] == 2
    assert body["group"]["name"] == "readiness" and "etcd" in body["group"]["left_out"]
    assert "web" in body["group"]["counted"]
    assert (await get(url + "/health/readiness")) == (status, body)
    status, body = await get(url + "/health/startup")
    assert (status, body["group"]["name"]) == (200, "startup")

    check.report_state_change("web", ERROR, "down")
    assert (await get(url + "/readiness"))[0] == 503
    assert (await get(url + "/liveness"))[0] == 503
    assert (await get(url + "/health/startup"))[0] == 503

    status, body = await get(url + "/health/shutdown")
    assert status == 404
    assert body["error"] == ("no health group 'shutdown'; the groups are: liveness, readiness, "
                             "startup")


async def test_openapi_lists_the_groups(served: tuple[Sidecar, str]) -> None:
    _, url = served
    _, document = await get(url + "/openapi.json")
    operation = document["paths"]["/health/{group}"]["get"]
    (parameter,) = operation["parameters"]
    assert parameter["schema"]["enum"] == ["liveness", "readiness", "startup"]
    schema = document["paths"]["/readiness"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    assert "group" in schema["required"]
    assert set(schema["properties"]["group"]["properties"]) >= {"counted", "left_out"}


# -- grace ----------------------------------------------------------------------------


async def test_an_error_counts_for_a_group_once_its_grace_there_has_run_out() -> None:
    check = started(config(liveness={"grace": {"program:*": "300ms"}}))
    check.register("program:web", fatal=True)
    check.report_state_change("program:web", OK)
    check.report_state_change("program:web", ERROR, "crash-looping")
    status = check.agent_status()
    assert status.state is ERROR and status.plugins["program:web"].state is ERROR
    assert not status.ready  # no grace in readiness: at once
    liveness = status.groups[LIVENESS]
    assert status.live and liveness.state is OK and "program:web" in liveness.in_grace
    assert status.probe_body(LIVENESS)["group"]["in_grace"] == liveness.in_grace
    # A new error text is the same outage: its grace does not start over.
    check.report_state_change("program:web", ERROR, "gave up")
    await until(lambda: not check.agent_status().live, 5, "liveness down after the grace")
    assert check.agent_status().groups[LIVENESS].in_grace == {}
    await check.close()


async def test_a_recovery_within_the_grace_never_counts() -> None:
    check = started(config(grace={"etcd": "200ms"}, readiness={"include": ["etcd"]}))
    check.register("etcd", groups=())
    check.report_state_change("etcd", OK)
    revisions: list[int] = []
    check.add_listener(lambda: revisions.append(check.revision))
    check.report_state_change("etcd", ERROR, "blip")
    assert check.agent_status().ready and check.agent_status().state is ERROR
    check.report_state_change("etcd", OK)
    seen = len(revisions)
    # Past the grace nothing fires any more (the timer went with the recovery).
    marker: list[bool] = []
    asyncio.get_running_loop().call_later(0.4, marker.append, True)
    await until(lambda: marker, 5, "the old grace long gone")
    assert len(revisions) == seen and check.agent_status().ready
    await check.close()


def test_a_grace_from_the_plugin_the_file_and_the_group() -> None:
    rules = GroupRules(config(grace={"k8s": "10s", "program:*": "5s"},
                              readiness={"include": ["k8s"], "grace": {"program:web": "1s"}}))
    assert rules.membership("k8s", frozenset(), 30).grace == {READINESS: 10}  # file > plugin
    assert rules.membership("kafka", frozenset(), 30).grace == {}  # counted nowhere
    assert rules.membership("etcd", frozenset({READINESS}), 30).grace == {READINESS: 30}
    web = rules.membership("program:web", frozenset({LIVENESS, READINESS}), 0)
    assert web.grace == {LIVENESS: 5, READINESS: 1}  # the group's own grace wins


# -- the built-in plugins' defaults (README's table) ------------------------------------


DEFAULTS = {
    "etcd": set(), "kafka": set(), "k8s": set(), "fleet": set(),
    "program:quiet": {READINESS}, "program:vital": {LIVENESS, READINESS},
    "process:worker": {READINESS},
    "process-manager": {LIVENESS, READINESS}, "supervisor": {LIVENESS, READINESS},
}


async def test_every_built_in_plugin_is_known_and_counts_as_the_readme_says(
        tmp_path: Path) -> None:
    config = every_plugin_config(tmp_path)
    (config / "supervisor.conf").write_text(
        "programs:\n"
        "  - {name: quiet, executable-path: /bin/sleep, executable-args: ['60']}\n"
        "  - {name: vital, executable-path: /bin/sleep, executable-args: ['60'], fatal: true}\n")
    (tmp_path / "templates" / "worker.json").write_text(
        '{"name": "worker", "cmd": "/bin/sleep", '
        '"p_options": {"args": ["60"], "run_on_startup": true}}')
    sidecar = build(Options(config_dir=str(config), env={}))
    agent = sidecar.agent()
    await agent.start()
    try:
        plugins = sidecar.statuscheck.agent_status().plugins
        assert {name: set(p.groups) for name, p in plugins.items()} == DEFAULTS
        for name in plugins:
            assert name in BUILTIN_CHECKS or name.startswith(CHECK_FAMILIES), name
    finally:
        await agent.stop()


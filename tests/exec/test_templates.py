"""Templates: JSON/YAML round trips, cn-infra files, the template dir, and start on init."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from sidecar.exec.processmanager import (
    HEALTH_PREFIX,
    Args,
    AsTemplate,
    Backoff,
    CPUAffinity,
    Detach,
    EnvVar,
    ProcessManager,
    ProcessManagerConfig,
    ProcessManagerPlugin,
    ProcessOptions,
    ProcessState,
    Restarts,
    StopSignal,
    Template,
    TemplateError,
    TemplateOptions,
    TemplateStore,
    WorkingDir,
    Writer,
)
from sidecar.health.statuscheck import PluginState, StatusCheck
from tests._wait import until
from tests.exec.helpers import running


def test_json_and_yaml_round_trip() -> None:
    template = Template("web", "/usr/bin/web", TemplateOptions(
        args=("--port", "8080"), restart=-1, run_on_startup=True, out_writer=True,
        err_file="/var/log/web.err", env={"MODE": "prod"}, working_dir="/srv",
        stop_signal="SIGINT", stop_timeout="20s", backoff_base="500ms", backoff_cap="1m",
        cpu_affinity_list="0-1", notify=True, auto_terminate=True, detach=True))
    assert Template.from_json(template.to_json()) == template
    assert Template.from_yaml(template.to_yaml()) == template
    data = json.loads(template.to_json())
    assert data["p_options"]["run_on_startup"] is True  # cn-infra's snake_case keys
    assert "err_writer" not in data["p_options"]  # defaults are left out
    options = template.process_options()
    assert options.args == ("--port", "8080")
    assert options.restarts == -1
    assert options.stdout is None and options.stderr == "/var/log/web.err"
    assert options.env == {"MODE": "prod"}
    assert options.stop_signal is signal.SIGINT and options.stop_timeout == 20
    assert options.backoff == Backoff(base=0.5, cap=60)
    assert options.cpu_affinity == frozenset({0, 1})
    assert options.notify is True and options.detach and options.auto_terminate


def test_process_options_round_trip_through_a_template(tmp_path: Path) -> None:
    options = ProcessOptions(args=("-c", "x"), restarts=3, stdout=tmp_path / "out.log",
                             stderr=subprocess.DEVNULL, env={"A": "1"}, working_dir="/tmp",
                             stop_signal=signal.SIGQUIT, stop_timeout=2.5,
                             backoff=Backoff(base=0.25, cap=8, reset_after=30),
                             cpu_affinity=frozenset({1}), cpu_affinity_delay=0.5,
                             run_on_startup=True)
    template = Template.from_process("job", "/bin/sh", options)
    again = Template.from_json(template.to_json()).process_options()
    assert again.stdout == str(tmp_path / "out.log")
    assert again.stderr == subprocess.DEVNULL
    for field in ("args", "restarts", "env", "working_dir", "stop_signal", "stop_timeout",
                  "backoff", "cpu_affinity", "cpu_affinity_delay", "run_on_startup"):
        assert getattr(again, field) == getattr(options, field), field


def test_a_cn_infra_template_loads_unchanged() -> None:
    written_by_cn_infra = ('{"name":"vpp","cmd":"/usr/bin/vpp","p_options":{"args":["-c",'
                           '"/etc/vpp.conf"],"out_writer":true,"restart":2,'
                           '"run_on_startup":true,"cpu_affinity":"3","cpu_affinity_delay":"1s"}}')
    template = Template.from_json(written_by_cn_infra)
    assert template.run_on_startup
    options = template.process_options()
    assert options.cpu_affinity == frozenset({0, 1}) and options.cpu_affinity_delay == 1.0
    assert options.stderr == subprocess.DEVNULL  # no err_writer: discarded, as in cn-infra
    camel = Template.from_json('{"name":"a","cmd":"/bin/a","pOptions":{"runOnStartup":true}}')
    assert camel.run_on_startup


@pytest.mark.parametrize(("text", "message"), [
    ('{"name": "a", "cmd": "/bin/a", "p_options": {"restarts": 1}}',
     "p_options.restarts: unknown key"),
    ('{"name": "a", "cmd": "/bin/a", "p_options": {"restart": "always"}}',
     "p_options.restart: expected an integer"),
    ('{"name": "a", "cmd": "/bin/a", "p_options": {"restart": -5}}', "restarts must be -1"),
    ('{"name": "a", "cmd": "/bin/a", "p_options": {"stop_signal": "SIGNOPE"}}',
     "not a signal"),
    ('{"name": "a", "cmd": "/bin/a", "p_options": {"stop_timeout": "soon"}}',
     "p_options.stop_timeout: expected a duration"),
    ('{"name": "", "cmd": "/bin/a"}', "name: a template needs a name"),
    ('{"name": "../evil", "cmd": "/bin/a"}', "cannot be a file name"),
    ('{"name": "a"}', "cmd: a template needs a command"),
    ('{"name": "a", "cmd": "/bin/a",', "invalid JSON: line 1"),
    ('[1, 2]', "expected an object"),
])
def test_invalid_templates_name_the_file_and_the_problem(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message) as caught:
        Template.from_json(text, "templates/a.json")
    assert str(caught.value).startswith("templates/a.json: ")


def test_a_template_dir_with_a_broken_file_still_loads_the_good_ones(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"name": "a", "cmd": "/bin/true"}')
    (tmp_path / "b.yaml").write_text("name: b\ncmd: /bin/true\np_options:\n  restart: 2\n")
    (tmp_path / "broken.json").write_text('{"name": "broken", "cmd": ')
    (tmp_path / "twin.json").write_text('{"name": "a", "cmd": "/bin/false"}')
    (tmp_path / "notes.txt").write_text("not a template")
    templates, errors = TemplateStore(tmp_path).load()
    assert [t.name for t in templates] == ["a", "b"]
    assert templates[1].p_options.restart == 2
    assert [Path(e.source).name for e in errors] == ["broken.json", "twin.json"]
    assert "already defined in" in str(errors[1])


async def test_the_template_option_writes_a_template(tmp_path: Path) -> None:
    async with ProcessManager(template_path=tmp_path / "templates") as manager:
        await manager.new_process("saved", "/bin/sleep", Args("60"), Restarts(2),
                                  EnvVar({"X": "y"}), StopSignal(signal.SIGINT, 3),
                                  WorkingDir(tmp_path), CPUAffinity({0}),
                                  AsTemplate(run_on_startup=True))
        await manager.new_process("unsaved", "/bin/true")
        saved = await manager.get_template("saved")
        assert saved is not None and saved.run_on_startup
        assert (tmp_path / "templates" / "saved.json").is_file()
        assert await manager.get_template("unsaved") is None
        assert [t.name for t in await manager.get_all_templates()] == ["saved"]
        copy = await manager.new_process_from_template(
            Template("copy", saved.cmd, saved.p_options))
        assert copy.options.args == ("60",) and copy.options.restarts == 2
        assert copy.options.env == {"X": "y"} and copy.options.stop_signal is signal.SIGINT
        await copy.start()
        assert copy.is_alive()
    assert copy.pid is not None and not running(copy.pid)


async def test_templates_need_a_template_path() -> None:
    async with ProcessManager() as manager:
        with pytest.raises(TemplateError, match="no template path"):
            await manager.get_all_templates()
        # The process itself is created; only its template is not written (logged).
        proc = await manager.new_process("p", "/bin/true", AsTemplate())
        assert manager.get_process("p") is proc


def _write(path: Path, name: str, body: dict[str, object]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.json").write_text(json.dumps({"name": name, **body}))


async def test_plugin_starts_run_on_startup_templates_at_init(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    marker = tmp_path / "marker"
    _write(templates, "starts", {"cmd": "/bin/sleep", "p_options": {
        "args": ["60"], "run_on_startup": True}})
    _write(templates, "waits", {"cmd": "/bin/sh", "p_options": {
        "args": ["-c", f"touch {marker}"]}})
    _write(templates, "missing", {"cmd": str(tmp_path / "nope"), "p_options": {
        "run_on_startup": True}})
    (templates / "broken.json").write_text("{")
    statuscheck = StatusCheck()
    plugin = ProcessManagerPlugin(ProcessManagerConfig(template_path=str(templates),
                                                       status_interval=0.05), statuscheck)
    await plugin.init()
    try:
        manager = plugin.manager
        starts, waits = manager.get_process("starts"), manager.get_process("waits")
        assert starts is not None and starts.is_alive()
        assert starts.state in (ProcessState.RUNNING, ProcessState.SLEEPING)
        assert waits is not None and waits.state is ProcessState.INITIAL
        assert not marker.exists()
        assert [Path(e.source).name for e in plugin.template_errors] == ["broken.json"]
        await statuscheck.probe_all()
        plugins = statuscheck.agent_status().plugins
        assert plugins["process-manager"].state is PluginState.OK
        assert plugins[f"{HEALTH_PREFIX}starts"].state is PluginState.OK
        assert plugins[f"{HEALTH_PREFIX}missing"].state is PluginState.ERROR
        assert not plugins[f"{HEALTH_PREFIX}starts"].fatal  # readiness, not liveness
        assert f"{HEALTH_PREFIX}waits" not in plugins
        pid = starts.pid
    finally:
        await plugin.close()
        await plugin.close()  # idempotent
    assert pid is not None and not running(pid)
    assert f"{HEALTH_PREFIX}starts" not in statuscheck.agent_status().plugins


async def test_a_template_process_that_gives_up_fails_its_check(tmp_path: Path) -> None:
    _write(tmp_path, "quitter", {"cmd": "/bin/sh", "p_options": {
        "args": ["-c", "exit 4"], "restart": 1, "run_on_startup": True}})
    statuscheck = StatusCheck()
    plugin = ProcessManagerPlugin(ProcessManagerConfig(template_path=str(tmp_path)),
                                  statuscheck)
    await plugin.init()
    try:
        quitter = plugin.manager.get_process("quitter")
        assert quitter is not None
        await until(lambda: quitter.gave_up, 5, what="the restart used up")
        await statuscheck.probe_all()
        status = statuscheck.plugin_status(f"{HEALTH_PREFIX}quitter")
        assert status is not None and status.state is PluginState.ERROR
        assert status.error == "exited (exit code 4) and will not be restarted (1 restarts)"
    finally:
        await plugin.close()


def test_detach_and_writer_survive_the_template() -> None:
    options = Template.from_process("d", "/bin/x", ProcessOptions(detach=True)).process_options()
    assert options.detach
    out = Template.from_process("w", "/bin/x", Writer(stdout=print).apply(ProcessOptions()))
    assert out.p_options.out_writer  # a callback cannot be stored: the sidecar's stdout
    assert Detach().apply(ProcessOptions()).detach


def test_the_example_config_and_templates_are_valid() -> None:
    from sidecar.builder import example_config_dir
    from sidecar.config import ConfigSources

    optional = example_config_dir().parent / "optional"
    sources = ConfigSources(config_dir=optional, env={})
    config = sources.load("process-manager", ProcessManagerConfig)
    assert config.template_path == "/etc/cninfra/process-templates"
    templates, errors = TemplateStore(optional / "process-templates").load()
    assert errors == []
    assert [t.name for t in templates] == ["heartbeat"]
    assert templates[0].run_on_startup

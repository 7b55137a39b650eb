"""supervisor.conf: the seed's keys, the additions, and errors that name the file, key and why."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from sidecar.builder import example_config_dir
from sidecar.config import ConfigError
from sidecar.exec.supervisor import (
    HOOK_STATES,
    ProgramConfig,
    SupervisorConfig,
    parse_supervisor_config,
    read_config_file,
)
from sidecar.logging.output import ProgramOutput

EXAMPLE = example_config_dir().parent / "optional" / "supervisor.conf"


def test_the_seed_keys() -> None:
    config = parse_supervisor_config("""
programs:
  - name: vpp
    executable-path: /usr/bin/vpp
    executable-args: ["-c", "/etc/vpp/startup.conf"]
    logfile-path: /tmp/vpp.log
    restarts: 4
  - executable-path: /usr/local/bin/vpp-agent.py
hooks:
  - cmd: /tmp/test.sh
    cmd-args: ["a", "b"]
""", "supervisor.conf")
    vpp, agent = config.programs
    assert (vpp.name, vpp.executable_path, vpp.executable_args, vpp.logfile_path,
            vpp.restarts) == ("vpp", "/usr/bin/vpp", ("-c", "/etc/vpp/startup.conf"),
                              "/tmp/vpp.log", 4)
    # No name: the executable's file name without its extension, as in cn-infra.
    assert agent.name == "vpp-agent"
    assert agent.restarts == 0 and agent.autostart and not agent.fatal
    assert config.hooks[0].cmd == "/tmp/test.sh" and config.hooks[0].cmd_args == ("a", "b")
    assert config.hooks[0].name == "test.sh"
    assert config.source == "supervisor.conf"


def test_the_additions_and_what_the_process_manager_gets() -> None:
    config = parse_supervisor_config("""
programs:
  - name: web
    executable-path: /usr/bin/web
    env: {MODE: demo}
    working-dir: /srv
    stop-signal: int
    stop-timeout: 1500ms
    backoff-base: 50ms
    backoff-cap: 2s
    backoff-factor: 3
    backoff-reset-after: 1m
    cpu-affinity-mask: "5"
    autostart: false
    fatal: true
hooks:
  - cmd: /bin/true
    programs: [web]
    states: [terminated, gave-up]
    timeout: 2s
hook-timeout: 3s
hook-concurrency: 2
hook-backlog: 5
watch-interval: 250ms
""", "s.conf")
    web = config.programs[0]
    options = web.process_options({"PATH": "/bin", "MODE": "prod"})
    assert options.env == {"PATH": "/bin", "MODE": "demo"}  # added to the sidecar's
    assert options.working_dir == "/srv"
    assert options.stop_signal is signal.SIGINT and options.stop_timeout == 1.5
    assert (options.backoff.base, options.backoff.cap, options.backoff.factor,
            options.backoff.reset_after) == (0.05, 2.0, 3.0, 60.0)
    assert options.cpu_affinity == frozenset({0, 2})
    # Without a log file, both streams go to the sidecar's stdout behind the name, through
    # one writer: one rate limit for the program.
    assert isinstance(options.stdout, ProgramOutput) and options.stdout is options.stderr
    assert options.stdout.program == "web"
    hook = config.hooks[0]
    assert hook.matches("web", "terminated") and not hook.matches("web", "started")
    assert config.hook_timeout_of(hook) == 2.0
    assert (config.hook_timeout, config.hook_concurrency, config.hook_backlog,
            config.watch_interval) == (3.0, 2, 5, 0.25)


def test_a_log_file_takes_both_streams_and_env_inherits_by_default() -> None:
    program = ProgramConfig(executable_path="/bin/sleep", logfile_path="/var/log/x.log")
    options = program.process_options()
    assert options.stdout == options.stderr == "/var/log/x.log"
    assert options.env is None  # the sidecar's environment as it is


def test_an_empty_file_is_no_programs() -> None:
    assert parse_supervisor_config("", "s.conf") == SupervisorConfig()
    assert parse_supervisor_config("# nothing yet\n", "s.conf").programs == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("programs: [{executable-path: /a}]\nhoks: []\n",
     "cm/supervisor.conf: hoks: unknown key (did you mean 'hooks'?)"),
    ("programs: [{name: a}]\n",
     "cm/supervisor.conf: programs[0].executable-path: required key is missing"),
    ("programs: [{executable-path: /a, restarts: many}]\n",
     "cm/supervisor.conf: programs[0].restarts: expected an integer, got 'many' (str)"),
    ("programs: [{executable-path: /a, restarts: -2}]\n",
     "programs[0]: restarts: -1 (always), 0 or a positive count, got -2"),
    ("programs: [{executable-path: /a, stop-signal: SIGFOO}]\n",
     "programs[0]: stop-signal: 'SIGFOO' is not a signal"),
    ("programs: [{executable-path: /a, stop-timeout: soon}]\n",
     "programs[0].stop-timeout:"),
    ("programs: [{executable-path: /a, env: {PORT: 8080}}]\n",
     "programs[0].env.PORT: expected a string, got 8080 (int)"),
    ("programs: [{executable-path: /usr/bin/a}, {name: a, executable-path: /b}]\n",
     "programs[1].name: 'a' is already the name of programs[0]"),
    ("programs: [{name: 'a b', executable-path: /a}]\n",
     "programs[0]: name: 'a b' is not a valid program name"),
    ("programs: [{executable-path: /a, cpu-affinity-list: '3-1'}]\n",
     "programs[0]: cpu-affinity-list: cpu range '3-1' is reversed"),
    ("programs: [{executable-path: /a}]\nhooks: [{cmd: /h, states: [crashed]}]\n",
     "hooks[0]: states: 'crashed' is not a program state"),
    ("programs: [{executable-path: /a}]\nhooks: [{cmd: /h, programs: [b]}]\n",
     "hooks[0].programs: 'b' is not a program of this file (programs: a)"),
    ("hooks: [{cmd: no-such-command-anywhere}]\n",
     "hooks[0].cmd: 'no-such-command-anywhere' is not on the sidecar's PATH; hooks run "
     "without PATH, so give an absolute path"),
    ("hook-concurrency: 0\n", "hook-concurrency: must be at least 1"),
    ("programs:\n  - executable-path: /a\n   name: b\n",
     "cm/supervisor.conf: invalid YAML: line 3, column 4"),
    ("- just a list\n", "cm/supervisor.conf: (top level): expected a mapping of keys"),
])
def test_errors_name_the_source_the_key_and_the_expectation(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_supervisor_config(text, "cm/supervisor.conf")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("cm/supervisor.conf: ")


def test_a_bare_hook_command_is_found_on_the_sidecars_path() -> None:
    config = parse_supervisor_config("hooks: [{cmd: sh, cmd-args: [-c, 'true']}]\n", "s")
    assert config.hooks[0].cmd == "sh"  # resolved when run (hooks themselves get no PATH)


def test_every_hook_state_is_a_word_hooks_can_get() -> None:
    assert {"started", "running", "sleeping", "idle", "terminated", "backoff", "gave-up",
            "failed"} <= HOOK_STATES
    assert "initial" not in HOOK_STATES


def test_the_example_file_parses(tmp_path: Path) -> None:
    text, config = read_config_file(EXAMPLE)
    assert config.program_names == ["heartbeat", "sleep"]
    assert config.hooks[0].cmd == "/bin/sh"
    assert "executable-path" in text and "cmd-args" in text
    missing = tmp_path / "nope.conf"
    with pytest.raises(ConfigError, match=f"{missing}: no such file"):
        read_config_file(missing)

"""The command line behaves as kubectl's and supervisorctl's users expect: ``--version``,
``HTTP_PORT`` for every client, ``-o json|wide`` and ``--no-headers`` on tables, exit
statuses in every ``--help``, a mistyped flag or command answered with the right one,
signal exits in words."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.builder import example_config_dir
from sidecar.cli._parser import suggest
from sidecar.cli._table import Column, render
from sidecar.cli.main import _parser
from sidecar.cli.programs import describe_exit
from tests._wait import wait_until
from tests.sidecar_proc import SidecarProcess


def sidecar(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in {"HTTP_PORT", "CONFIG_DIR"}}
    return subprocess.run([sys.executable, "-m", "sidecar", *args], capture_output=True,
                          text=True, timeout=60, check=False, env={**environ, **(env or {})})


def every_command(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                  ) -> list[tuple[str, ...]]:
    """Every command and sub-command of the parser, walked, so a new one is not missed."""
    found = [path]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += every_command(sub, (*path, name))
    return found


def test_version_flag_prints_what_the_version_command_prints() -> None:
    flag, command = sidecar("--version"), sidecar("version")
    assert flag.returncode == command.returncode == 0
    assert flag.stdout == command.stdout
    assert flag.stdout.startswith("sidecar 0.1.0 (built ")


def test_every_help_ends_with_the_exit_statuses() -> None:
    commands = every_command(_parser(("etcd",)))
    assert ("programs", "tail") in commands and ("config", "check") in commands
    # Groups without an action of their own (config, log) only dispatch; the rest tell.
    groups = {("config",), ("log",)}
    for command in commands:
        if command in groups:
            continue
        shown = sidecar(*command, "--help")
        assert shown.returncode == 0, command
        assert "\nexit status:\n  0  " in shown.stdout, (command, shown.stdout)


@pytest.mark.parametrize(("args", "hint"), [
    (["run", "--port", "9191"], "(did you mean --http-port?)"),
    (["run", "--config-dri", "x"], "(did you mean --config-dir?)"),
    (["log", "list", "--jsno"], "(did you mean --json?)"),
    (["stauts"], "(did you mean 'status'?)"),
    (["programs", "tial", "web"], "(did you mean 'tail'?)"),
    (["status", "-o", "jsno"], "(did you mean 'json'?)"),
])
def test_a_mistyped_flag_or_command_suggests_the_right_one(args: list[str], hint: str) -> None:
    done = sidecar(*args)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.endswith(hint), done.stderr
    assert last.startswith(f"sidecar{' ' + args[0] if args[0] in ('run', 'log') else ''}")


def test_suggestions() -> None:
    assert suggest("--port", ["--url", "--http-port", "--config-dir"]) == "--http-port"
    assert suggest("--label", ["--microservice-label", "--log-level"]) == "--microservice-label"
    assert suggest("--zzz", ["--url", "--http-port"]) is None


def test_signal_exits_are_shown_in_words() -> None:
    assert describe_exit(-15) == "killed by SIGTERM"
    assert describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "3"
    assert describe_exit(None) == "-"


def test_tables_align_and_hide_wide_columns() -> None:
    columns = (Column("NAME"), Column("STATE"), Column("MORE", wide=True))
    rows = [("web", "running", "x"), ("batch-job", "stopped", "y")]
    assert render(columns, rows) == "NAME       STATE\nweb        running\nbatch-job  stopped"
    assert render(columns, rows, wide=True, headers=False).splitlines() == [
        "web        running  x", "batch-job  stopped  y"]


def test_status_log_and_programs_honour_http_port_and_output_options(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    for conf in example_config_dir().glob("*.conf"):
        (config_dir / conf.name).write_text(conf.read_text())
    (config_dir / "supervisor.conf").write_text(
        "programs:\n"
        "  - {name: idle, executable-path: /bin/sleep, executable-args: ['600']}\n"
        "  - {name: dies, executable-path: /bin/sh, executable-args: ['-c', 'kill -TERM $$']}\n")
    proc = SidecarProcess(config_dir, env={"MICROSERVICE_LABEL": "habits"})
    sidecars.append(proc)
    proc.start()
    port = {"HTTP_PORT": str(proc.port)}  # as `sidecar run` reads it: no --url needed
    wait_until(lambda: proc.get("/readiness")[1]["plugins"].get("program:dies", {})
               .get("state") == 2, 15, "program 'dies' reported ERROR")

    status = sidecar("status", env=port)
    assert status.returncode == 1, status.stderr  # 'dies' gave up: the agent is ERROR
    assert status.stdout.startswith("agent    ERROR")
    # The answer of /readiness, and what it counted ('dies' is the pod's own program).
    assert status.stdout.splitlines()[1].startswith("readiness ERROR  (counts ")
    assert status.stdout.splitlines()[3].split() == ["PLUGIN", "STATE", "CHANGED", "ERROR"]
    rows = sidecar("status", "--no-headers", env=port).stdout.splitlines()
    assert [row.split()[:2] for row in rows if row.startswith("program:")] == [
        ["program:dies", "ERROR"], ["program:idle", "OK"]]
    wide = sidecar("status", "-o", "wide", env=port).stdout.splitlines()
    assert wide[3].split() == ["PLUGIN", "STATE", "CHANGED", "UPDATED", "ERROR"]
    as_json = json.loads(sidecar("status", "-o", "json", env=port).stdout)
    assert as_json["state"] == 2 and "program:idle" in as_json["plugins"]

    listing = sidecar("programs", env=port)
    assert listing.returncode == 0, listing.stderr
    dies = next(line for line in listing.stdout.splitlines() if line.startswith("dies"))
    assert "killed by SIGTERM" in dies and "-15" not in dies
    wide = sidecar("programs", "list", "-o", "wide", env=port).stdout.splitlines()
    assert wide[0].split()[-3:] == ["COMMAND", "LOGFILE", "AUTOSTART"]
    assert "/bin/sleep 600" in next(line for line in wide if line.startswith("idle"))
    bare = sidecar("programs", "--no-headers", env=port).stdout.splitlines()
    assert [line.split()[0] for line in bare] == ["dies", "idle"]
    rows = json.loads(sidecar("programs", "-o", "json", env=port).stdout)
    assert {row["name"]: row["exit_code"] for row in rows}["dies"] == -15

    levels = sidecar("log", "list", "--no-headers", env=port).stdout.splitlines()
    assert levels and not levels[0].startswith("LOGGER")
    assert sidecar("log", "list", "-o", "wide", env=port).stdout.split()[:4] == [
        "LOGGER", "LEVEL", "EXPIRES", "EXPIRES"]
    assert isinstance(json.loads(sidecar("log", "list", "-o", "json", env=port).stdout), list)

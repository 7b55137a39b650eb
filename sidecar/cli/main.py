"""``sidecar run|status|config check|version``; the dispatch to ``log``, ``programs``,
``inject``, ``operator``.

Only ``run`` imports the server; the other commands use the standard library
so that they answer quickly inside a pod.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from ._http import default_url, short_duration
from ._parser import Parser
from ._table import Column, add_output_options, render, to_json

_CONFIG_FLAG = re.compile(r"^--([a-z0-9][a-z0-9.-]*)-config(?:=(.*))?$")
_STATE_NAMES = {0: "INIT", 1: "OK", 2: "ERROR"}


def _config_names() -> Sequence[str]:
    from sidecar.builder import CONFIG_NAMES

    return CONFIG_NAMES


#: Exit statuses, shown at the end of each command's --help.
RUN_EXIT = {0: "stopped by SIGTERM or SIGINT after a clean start",
            1: "a plugin failed to start or to stop",
            2: "bad configuration, flag or environment variable (nothing was started)"}
CLIENT_EXIT = {0: "done", 1: "refused by the sidecar, or a bad request",
               2: "the sidecar cannot be reached, or bad usage"}
STATUS_EXIT = {0: "the agent is OK", 1: "the agent is INIT or ERROR",
               2: "the sidecar cannot be reached, or bad usage"}
CHECK_EXIT = {0: "every file is valid (warnings may have been printed)",
              1: "at least one error", 2: "bad usage"}


def _parser(config_names: Sequence[str] = ()) -> argparse.ArgumentParser:
    from . import inject as inject_command
    from . import log as log_command
    from . import operator as operator_command
    from . import programs as programs_command

    parser = Parser(prog="sidecar", description="cn-infra infra plugins sidecar",
                    exit_codes={0: "done", 2: "bad usage; each command's --help lists its own"})
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="print version, build date and commit, and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the sidecar agent", exit_codes=RUN_EXIT)
    run.add_argument("--config-dir", help="directory of <plugin>.conf files (env CONFIG_DIR)")
    run.add_argument("--http-port", help="REST port (env HTTP_PORT, default 9191)")
    run.add_argument("--probe-port", help="a listener of its own for /liveness and /readiness "
                                          "(env PROBE_PORT; default none)")
    run.add_argument("--microservice-label", help="agent label (env MICROSERVICE_LABEL)")
    run.add_argument("--log-level", default=None, help="initial log level (env INITIAL_LOGLVL)")
    run.add_argument("--log-format", choices=["text", "json"], default="text",
                     help="log output format")
    run.add_argument("--start-timeout", default="15s",
                     help="longest start-up of all plugins (default 15s)")
    run.add_argument("--stop-timeout", default="5s",
                     help="longest graceful stop of all plugins (default 5s)")
    for name in config_names:
        run.add_argument(f"--{name}-config", metavar="PATH", dest=f"config:{name}",
                         help=f"{name}.conf path (env {name.upper().replace('-', '_')}_CONFIG)")

    status = sub.add_parser("status", help="print the local agent's status",
                            exit_codes=STATUS_EXIT)
    status.add_argument("--url", default=None,
                        help="base URL of the sidecar's REST API "
                             "(default http://127.0.0.1:$HTTP_PORT, else port 9191)")
    add_output_options(status)
    status.add_argument("--json", action="store_const", dest="output", const="json",
                        help="the same as -o json")

    config = sub.add_parser("config", help="check config files before a sidecar reads them")
    config_sub = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    check = config_sub.add_parser(
        "check", exit_codes=CHECK_EXIT,
        help="load every config file the sidecar would and report every mistake at once",
        description="Load every config file 'sidecar run' would read (the config dir, "
                    "<NAME>_CONFIG variables, --<name>-config flags) and report every "
                    "mistake at once, with the file, the key and what was expected; files "
                    "of the config dir that no plugin reads are warnings.")
    check.add_argument("config_dir", nargs="?", metavar="DIR",
                       help="the config dir (default $CONFIG_DIR)")
    for name in config_names:
        check.add_argument(f"--{name}-config", metavar="PATH", dest=f"config:{name}",
                           help=argparse.SUPPRESS)
    add_output_options(check)

    log = sub.add_parser("log", help="list loggers or change a log level at run time")
    log_command.add_arguments(log)

    programs = sub.add_parser("programs", help="list, start, stop, restart or tail the "
                                               "supervisor's programs (default: list)",
                              exit_codes=CLIENT_EXIT)
    programs_command.add_arguments(programs)

    inject_command.add_arguments(sub.add_parser(
        "inject", help="add the sidecar to the pods and pod templates of a YAML stream",
        exit_codes={0: "done", 2: "bad input (nothing is written)"}))

    operator_command.add_arguments(sub.add_parser(
        "operator", help="run the injection webhook and fleet view (a kopf operator)",
        exit_codes={0: "stopped", 2: "bad config file or injection spec"}))

    sub.add_parser("version", help="print version, build date and commit",
                   exit_codes={0: "done"})
    return parser


class _VersionAction(argparse.Action):
    """``sidecar --version``: what ``sidecar version`` prints."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        _version()
        parser.exit()


def _split_config_flags(argv: Sequence[str],
                        config_names: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """Pull ``--<name>-config PATH`` flags of user plugins out of argv."""
    rest: list[str] = []
    extra: dict[str, str] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        match = _CONFIG_FLAG.match(args[i])
        if match and match.group(1) not in config_names:
            if match.group(2) is not None:
                extra[match.group(1)] = match.group(2)
            elif i + 1 < len(args):
                extra[match.group(1)] = args[i + 1]
                i += 1
            else:
                rest.append(args[i])
        else:
            rest.append(args[i])
        i += 1
    return rest, extra


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        return _main(argv)
    try:
        code = _main(argv)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
    except BrokenPipeError:
        return _reader_gone()
    return code


def _reader_gone() -> int:
    """stdout's reader has gone (``sidecar log list | head -1``): end quietly, as Unix
    tools do when SIGPIPE ends them, with the status a shell shows for that."""
    # Python flushes stdout once more on the way out: let that write go nowhere.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def _main(argv: list[str]) -> int:
    # The builder (and aiohttp with it) only for the commands that read config files:
    # the clients answer at once inside a pod.
    config_names = _config_names() if argv[:1] in (["run"], ["config"]) else ()
    extra_configs: dict[str, str] = {}
    if config_names:
        argv, extra_configs = _split_config_flags(argv, config_names)
    args = _parser(config_names).parse_args(argv)
    if args.command == "version":
        return _version()
    if args.command == "status":
        return _status(args)
    if args.command == "config":
        return _config_check(args)
    if args.command == "log":
        from . import log as log_command

        return log_command.run(args)
    if args.command == "programs":
        from . import programs as programs_command

        return programs_command.run(args)
    if args.command == "operator":
        from . import operator as operator_command

        return operator_command.run(args)
    if args.command == "inject":
        from . import inject as inject_command

        return inject_command.run(args)
    return _run(args, extra_configs)


def _run(args: argparse.Namespace, extra_configs: dict[str, str]) -> int:
    from sidecar.builder import Options, build
    from sidecar.config import ConfigError, parse_duration
    from sidecar.logging import InvalidLevelError, parse_level, set_service_label, setup_logging

    files = {k.split(":", 1)[1]: v for k, v in vars(args).items()
             if k.startswith("config:") and v is not None}
    files.update(extra_configs)
    try:
        # Until logs.conf is applied; a bad name is reported by build() with the config errors.
        initial = parse_level(args.log_level or os.environ.get("INITIAL_LOGLVL") or "info")
    except InvalidLevelError:
        initial = parse_level("info")
    setup_logging(initial, args.log_format)
    try:
        timeouts = {}
        for flag in ("start_timeout", "stop_timeout"):
            try:
                timeouts[flag] = parse_duration(getattr(args, flag))
            except ValueError as exc:
                raise ConfigError(f"--{flag.replace('_', '-')}: {exc}") from None
        options = Options(config_dir=args.config_dir, config_files=files,
                          http_port=args.http_port, probe_port=args.probe_port,
                          microservice_label=args.microservice_label,
                          log_level=args.log_level, start_timeout=timeouts["start_timeout"],
                          stop_timeout=timeouts["stop_timeout"])
        sidecar = build(options)
        agent = sidecar.agent()
    except ConfigError as exc:
        for message in exc.messages:  # every mistake of the file, one line each
            if args.log_format == "json":  # JSON lines only, also for a start that fails
                config_log = logging.getLogger("sidecar.config")
                config_log.error("config error: %s", message,
                                 extra={"event": "config.error"})
            else:
                print(f"sidecar: config error: {message}", file=sys.stderr)
        return 2
    set_service_label(sidecar.servicelabel.agent_label())
    return agent.run()


def _version() -> int:
    from sidecar.buildinfo import current

    info = current()
    print(f"sidecar {info.version} (built {info.date}, commit {info.commit_hash})")
    return 0


def _status(args: argparse.Namespace) -> int:
    url = args.url or default_url()
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/readiness", timeout=5) as reply:
            body = reply.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"sidecar: cannot reach {url}: {reason}", file=sys.stderr)
        return 2
    try:
        status: dict[str, Any] = json.loads(body)
    except ValueError:
        print(f"sidecar: {url}/readiness did not return JSON", file=sys.stderr)
        return 2
    if args.output == "json":
        print(to_json(status))
    else:
        print(format_status(status, wide=args.output == "wide", headers=not args.no_headers))
    return 0 if status.get("state") == 1 else 1


def format_status(status: dict[str, Any], now: float | None = None, *, wide: bool = False,
                  headers: bool = True) -> str:
    """The agent's state and build, then a table of its plugins; without ``headers``
    only the plugins' rows (for scripts: ``sidecar status --no-headers | awk ...``)."""
    now = time.time() if now is None else now

    def ago(stamp: object) -> str:
        if not isinstance(stamp, int | float):
            return "-"
        return f"{short_duration(now - stamp)} ago"

    def state_name(value: object) -> str:
        return _STATE_NAMES.get(value, str(value)) if isinstance(value, int) else str(value)

    rows = []
    for name, info in sorted((status.get("plugins") or {}).items()):
        error = str(info.get("error") or "")
        if not wide and len(error) > _ERROR_WIDTH:
            error = error[:_ERROR_WIDTH - 3] + "..."
        rows.append((name, state_name(info.get("state", -1)), ago(info.get("last_change")),
                     ago(info.get("last_update")), error))
    table = render(_PLUGIN_COLUMNS, rows, wide=wide, headers=headers)
    if not headers:
        return table
    lines = [
        f"agent    {state_name(status.get('state', -1))}  (since {ago(status.get('last_change'))}"
        f", up since {ago(status.get('start_time'))})",
        f"build    {status.get('build_version')} {status.get('build_date')} "
        f"{status.get('commit_hash')}",
    ]
    group = status.get("group")
    if isinstance(group, dict):
        left_out = ", ".join(group.get("left_out") or ()) or "none"
        lines.insert(1, f"{group.get('name', 'group'):<8} {state_name(group.get('state', -1))}"
                        f"  (counts {len(group.get('counted') or ())} plugins, leaves out "
                        f"{left_out})")
    return "\n".join([*lines, table] if rows else lines)


_ERROR_WIDTH = 80
_PLUGIN_COLUMNS = (Column("PLUGIN"), Column("STATE"), Column("CHANGED"),
                   Column("UPDATED", wide=True), Column("ERROR"))


def _config_check(args: argparse.Namespace) -> int:
    from sidecar.builder import Options
    from sidecar.configcheck import check

    files = {k.split(":", 1)[1]: v for k, v in vars(args).items()
             if k.startswith("config:") and v is not None}
    report = check(Options(config_dir=args.config_dir, config_files=files))
    if args.output == "json":
        print(to_json(report.to_dict()))
        return 0 if report.ok else 1
    rows = [(r.file.filename, r.status if r.status != "error" else
             f"{len(r.errors)} error{'s' if len(r.errors) > 1 else ''}",
             str(r.path) if r.path else "-", r.file.without if r.path is None else "")
            for r in report.files]
    if report.files:
        print(render(_CHECK_COLUMNS, rows, wide=args.output == "wide",
                     headers=not args.no_headers))
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    checked = sum(1 for r in report.files if r.path is not None)
    counts = f"{_plural(len(report.errors), 'error')}, {_plural(len(report.warnings), 'warning')}"
    where = f" in {report.config_dir}" if report.config_dir else ""
    verdict = "config ok" if report.ok else "config check failed"
    print(f"{verdict}: {_plural(checked, 'file')} checked{where}, {counts}",
          file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


_CHECK_COLUMNS = (Column("FILE"), Column("STATUS"), Column("PATH"),
                  Column("WITHOUT IT", wide=True))


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"

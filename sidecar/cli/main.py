"""``sidecar run|status|version``; the dispatch to ``log``, ``programs``, ``inject``, ``operator``.

Only ``run`` imports the server; the other commands use the standard library
so that they answer quickly inside a pod.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

_CONFIG_FLAG = re.compile(r"^--([a-z0-9][a-z0-9.-]*)-config(?:=(.*))?$")
_STATE_NAMES = {0: "INIT", 1: "OK", 2: "ERROR"}


def _config_names() -> Sequence[str]:
    from sidecar.builder import CONFIG_NAMES

    return CONFIG_NAMES


def _parser(config_names: Sequence[str] = ()) -> argparse.ArgumentParser:
    from . import inject as inject_command
    from . import log as log_command
    from . import operator as operator_command
    from . import programs as programs_command

    parser = argparse.ArgumentParser(prog="sidecar", description="cn-infra infra plugins sidecar")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the sidecar agent")
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

    status = sub.add_parser("status", help="print the local agent's status")
    status.add_argument("--url", default="http://127.0.0.1:9191",
                        help="base URL of the sidecar's REST API")
    status.add_argument("--json", action="store_true", help="print the raw JSON")

    log = sub.add_parser("log", help="list loggers or change a log level at run time")
    log_command.add_arguments(log)

    programs = sub.add_parser("programs", help="list, start, stop or restart the supervisor's "
                                               "programs (default: list)")
    programs_command.add_arguments(programs)

    inject_command.add_arguments(sub.add_parser(
        "inject", help="add the sidecar to the pods and pod templates of a YAML stream"))

    operator_command.add_arguments(sub.add_parser(
        "operator", help="run the injection webhook and fleet view (a kopf operator)"))

    sub.add_parser("version", help="print version, build date and commit")
    return parser


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
    config_names = _config_names() if argv[:1] == ["run"] else ()
    extra_configs: dict[str, str] = {}
    if config_names:
        argv, extra_configs = _split_config_flags(argv, config_names)
    args = _parser(config_names).parse_args(argv)
    if args.command == "version":
        return _version()
    if args.command == "status":
        return _status(args.url, args.json)
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
    except ConfigError as exc:
        for message in exc.messages:  # every mistake of the file, one line each
            print(f"sidecar: config error: {message}", file=sys.stderr)
        return 2
    set_service_label(sidecar.servicelabel.agent_label())
    return sidecar.agent().run()


def _version() -> int:
    from sidecar.buildinfo import current

    info = current()
    print(f"sidecar {info.version} (built {info.date}, commit {info.commit_hash})")
    return 0


def _status(url: str, raw: bool) -> int:
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
    if raw:
        print(json.dumps(status, indent=2))
    else:
        print(format_status(status))
    return 0 if status.get("state") == 1 else 1


def format_status(status: dict[str, Any], now: float | None = None) -> str:
    now = time.time() if now is None else now

    def ago(stamp: object) -> str:
        if not isinstance(stamp, int | float):
            return "-"
        seconds = max(int(now - stamp), 0)
        if seconds < 120:
            return f"{seconds}s ago"
        if seconds < 7200:
            return f"{seconds // 60}m ago"
        return f"{seconds // 3600}h ago"

    state = _STATE_NAMES.get(status.get("state", -1), str(status.get("state")))
    lines = [
        f"agent    {state}  (since {ago(status.get('last_change'))}, "
        f"up since {ago(status.get('start_time'))})",
        f"build    {status.get('build_version')} {status.get('build_date')} "
        f"{status.get('commit_hash')}",
    ]
    plugins = status.get("plugins") or {}
    if plugins:
        width = max(len(name) for name in plugins)
        lines.append("plugins")
        for name, info in sorted(plugins.items()):
            pstate = _STATE_NAMES.get(info.get("state", -1), str(info.get("state")))
            line = f"  {name:<{width}}  {pstate:<5}  changed {ago(info.get('last_change'))}"
            if info.get("error"):
                line += f"  error: {info['error']}"
            lines.append(line)
    return "\n".join(lines)

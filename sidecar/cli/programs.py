"""``sidecar programs ...``: the supervisor's REST API from the command line (supervisorctl).

The standard library only (the client of :mod:`sidecar.cli._http`), outside the
supervisor's package so that nothing of the supervisor is imported: it answers at
once inside a pod::

    sidecar programs                 # the same as "list"
    sidecar programs list [--json]
    sidecar programs start|stop|restart NAME
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from typing import Any

from ._http import (
    TOKEN_ENV,
    RemoteError,
    call,
    connection_options,
    default_url,
    short_duration,
    token_from_args,
)

ACTIONS = ("start", "stop", "restart")
#: How long one request waits for the action (below the client's 5 s timeout); a longer
#: one (a stop-timeout) is answered 202 and watched from here.
WAIT = "4s"
POLL = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``programs`` command's sub-commands and options."""
    # Suppressed defaults: the options may come before the sub-command, after it, or alone.
    connection_options(parser, default=argparse.SUPPRESS)
    common = connection_options(default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="programs_command")
    listing = sub.add_parser("list", parents=[common],
                             help="every program: state, pid, restarts, uptime, health")
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                         help="print the raw JSON")
    helps = {"start": "start a program that is not running",
             "stop": "stop a program (its stop signal, SIGKILL after its stop-timeout)",
             "restart": "stop a program if it runs, then start it"}
    for action in ACTIONS:
        command = sub.add_parser(action, parents=[common], help=helps[action])
        command.add_argument("name", help="program name (see 'sidecar programs list')")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 done, 1 refused, unknown program or failed start, 2 sidecar unreachable."""
    command = getattr(args, "programs_command", None) or "list"
    options = argparse.Namespace(url=None, token=None, token_file=None, json=False)
    options.__dict__.update({k: v for k, v in vars(args).items() if v is not None})
    base = (options.url or default_url()).rstrip("/")
    try:
        token = token_from_args(options)
        if command == "list":
            rows = call("GET", f"{base}/supervisor/programs", token)
            print(json.dumps(rows, indent=2) if options.json else format_programs(rows))
            return 0
        name = urllib.parse.quote(options.name, safe="")
        answer = call("POST", f"{base}/supervisor/programs/{name}/{command}?wait={WAIT}",
                      token)
        if "watch" in answer:  # 202: it runs on in the sidecar; follow it to its end
            print(f"{options.name}: {command} in progress ({answer['program'].get('state')})"
                  "...", file=sys.stderr, flush=True)
            row = answer["program"]
            while row.get("pending"):
                time.sleep(POLL)
                row = call("GET", base + answer["watch"], token)
            answer = {"program": row, "action": command, "changed": True}
            if row.get("state") == "failed":
                print(f"sidecar: {options.name}: {command} failed: {row.get('error')}",
                      file=sys.stderr)
                return 1
    except RemoteError as exc:
        if exc.status == 404 and command == "list":
            print(f"sidecar: {base} runs no supervisor (it has no supervisor.conf)",
                  file=sys.stderr)
        elif exc.status in (401, 403):
            print(f"sidecar: {exc} (give --token, --token-file or {TOKEN_ENV})", file=sys.stderr)
        else:
            print(f"sidecar: {exc}", file=sys.stderr)
        return 2 if exc.status is None else 1
    print(format_action(answer))
    return 0


def format_programs(rows: list[dict[str, Any]]) -> str:
    header = ("NAME", "STATE", "PID", "RESTARTS", "UPTIME", "EXIT", "HEALTH")
    table = [header]
    for row in rows:
        exit_code = row.get("exit_code")
        table.append((
            str(row.get("name")),
            str(row.get("state")),
            str(row["pid"]) if row.get("pid") else "-",
            str(row.get("restarts", 0)),
            _uptime(row.get("uptime")) if row.get("running") else "-",
            "-" if exit_code is None else str(exit_code),
            "ok" if row.get("healthy") else f"error: {row.get('error')}",
        ))
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  " + line[-1] for line in table)


def format_action(answer: dict[str, Any]) -> str:
    """``web: restarted (sleeping, pid 4242)``."""
    row = answer.get("program") or {}
    done = {"start": "started", "stop": "stopped", "restart": "restarted"}.get(
        str(answer.get("action")), str(answer.get("action")))
    if not answer.get("changed"):
        done = "already running" if answer.get("action") == "start" else "was not running"
    pid = f", pid {row['pid']}" if row.get("pid") else ""
    return f"{row.get('name')}: {done} ({row.get('state')}{pid})"


def _uptime(seconds: object) -> str:
    return short_duration(seconds) if isinstance(seconds, int | float) else "-"

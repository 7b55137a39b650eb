"""``sidecar programs ...``: the supervisor's REST API from the command line (supervisorctl).

The standard library only (the client of :mod:`sidecar.cli._http`), outside the
supervisor's package so that nothing of the supervisor is imported: it answers at
once inside a pod::

    sidecar programs                 # the same as "list"
    sidecar programs list [-o wide|json] [--no-headers]
    sidecar programs start|stop|restart NAME
    sidecar programs tail NAME [-n 10] [--no-follow]
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
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
from ._table import Column, add_output_options, render, to_json

ACTIONS = ("start", "stop", "restart")
#: How long one request waits for the action (below the client's 5 s timeout); a longer
#: one (a stop-timeout) is answered 202 and watched from here.
WAIT = "4s"
POLL = 0.5


EXIT_CODES = {0: "done", 1: "refused, unknown program or failed start",
              2: "the sidecar cannot be reached, or bad usage"}
TAIL_EXIT = {0: "the log ended (the sidecar stopped) or --no-follow",
             1: "refused or unknown program", 2: "the sidecar cannot be reached, or bad usage",
             130: "interrupted (Ctrl-C)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``programs`` command's sub-commands and options."""
    # Suppressed defaults: the options may come before the sub-command, after it, or alone.
    connection_options(parser, default=argparse.SUPPRESS)
    add_output_options(parser, suppress=True)
    common = connection_options(default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="programs_command", metavar="COMMAND")
    listing = sub.add_parser("list", parents=[common], exit_codes=EXIT_CODES,
                             help="every program: state, pid, restarts, uptime, health")
    add_output_options(listing, suppress=True)
    listing.add_argument("--json", action="store_const", dest="output", const="json",
                         default=argparse.SUPPRESS, help="the same as -o json")
    helps = {"start": "start a program that is not running",
             "stop": "stop a program (its stop signal, SIGKILL after its stop-timeout)",
             "restart": "stop a program if it runs, then start it"}
    for action in ACTIONS:
        command = sub.add_parser(action, parents=[common], help=helps[action],
                                 exit_codes=EXIT_CODES)
        command.add_argument("name", help="program name (see 'sidecar programs list')")
    tail = sub.add_parser("tail", parents=[common], exit_codes=TAIL_EXIT,
                          help="print a program's last output lines and follow new ones",
                          description="Print the last lines a program wrote (its logfile, or "
                                      "what the sidecar keeps of its output) and follow new "
                                      "ones until Ctrl-C or the sidecar stops (an admin "
                                      "route: from loopback, or with the token).")
    tail.add_argument("name", help="program name (see 'sidecar programs list')")
    tail.add_argument("-n", "--lines", type=int, default=10,
                      help="how many of the last lines to print first (default 10)")
    tail.add_argument("-f", "--follow", action="store_true", default=True,
                      help="follow new lines (the default)")
    tail.add_argument("--no-follow", action="store_false", dest="follow",
                      help="print the last lines and exit")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 done, 1 refused, unknown program or failed start, 2 sidecar unreachable."""
    command = getattr(args, "programs_command", None) or "list"
    options = argparse.Namespace(url=None, token=None, token_file=None, output="table",
                                 no_headers=False)
    options.__dict__.update({k: v for k, v in vars(args).items() if v is not None})
    base = (options.url or default_url()).rstrip("/")
    try:
        token = token_from_args(options)
        if command == "list":
            rows = call("GET", f"{base}/supervisor/programs", token)
            print(to_json(rows) if options.output == "json" else format_programs(
                rows, wide=options.output == "wide", headers=not options.no_headers))
            return 0
        name = urllib.parse.quote(options.name, safe="")
        if command == "tail":
            return _tail(f"{base}/supervisor/programs/{name}/log", token, options)
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


def _tail(url: str, token: str | None, options: argparse.Namespace) -> int:
    """Copy the program's log stream to stdout as it comes."""
    if options.lines < 0:
        raise RemoteError("--lines must not be negative", 0)
    query = {"lines": str(options.lines), "follow": "true" if options.follow else "false"}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{url}?{urllib.parse.urlencode(query)}", headers=headers)
    try:
        # No timeout while following: a quiet program sends nothing for as long as it likes.
        with urllib.request.urlopen(request, timeout=None if options.follow else 10) as reply:
            for line in reply:
                sys.stdout.write(line.decode("utf-8", "replace"))
                sys.stdout.flush()
    except urllib.error.HTTPError as exc:
        raise RemoteError(f"GET {url}: {exc.code} {_reason(exc)}", exc.code) from None
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except (urllib.error.URLError, OSError) as exc:
        raise RemoteError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    return 0


def _reason(exc: urllib.error.HTTPError) -> str:
    import json

    detail = exc.read()
    try:
        return str(json.loads(detail).get("error"))
    except (ValueError, AttributeError):
        return detail.decode(errors="replace").strip() or str(exc.reason)


def format_programs(rows: list[dict[str, Any]], *, wide: bool = False,
                    headers: bool = True) -> str:
    """NAME, STATE, PID, RESTARTS, UPTIME, EXIT (of the last run), HEALTH; wide adds the
    command, the logfile and autostart."""
    table = []
    for row in rows:
        table.append((
            str(row.get("name")),
            str(row.get("state")),
            str(row["pid"]) if row.get("pid") else "-",
            str(row.get("restarts", 0)),
            _uptime(row.get("uptime")) if row.get("running") else "-",
            describe_exit(row.get("exit_code")),
            "ok" if row.get("healthy") else f"error: {row.get('error')}",
            " ".join([str(row.get("command")), *map(str, row.get("args") or [])]),
            str(row.get("logfile") or "-"),
            "yes" if row.get("autostart", True) else "no",
        ))
    return render(_COLUMNS, table, wide=wide, headers=headers)


_COLUMNS = (Column("NAME"), Column("STATE"), Column("PID"), Column("RESTARTS"),
            Column("UPTIME"), Column("EXIT"), Column("HEALTH"), Column("COMMAND", wide=True),
            Column("LOGFILE", wide=True), Column("AUTOSTART", wide=True))


def describe_exit(code: object) -> str:
    """``0``, ``3``, ``killed by SIGTERM`` (a process's returncode is -N for signal N)."""
    if not isinstance(code, int):
        return "-"
    if code >= 0:
        return str(code)
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


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

"""``sidecar log ...``: the log manager's REST API from the command line.

Standard library only (urllib), so the command answers in well under a
second even on a small pod.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from typing import Any

from sidecar.logging.levels import InvalidLevelError, parse_level

from ._http import (
    RemoteError,
    call,
    connection_options,
    default_url,
    short_duration,
    token_from_args,
)
from ._table import Column, add_output_options, render, to_json


def logger_url(base: str, logger: str, *parts: str) -> str:
    path = "/".join(urllib.parse.quote(p, safe="") for p in (logger, *parts))
    return f"{base.rstrip('/')}/log/{path}"


def format_levels(rows: list[dict[str, Any]], now: float | None = None, *, wide: bool = False,
                  headers: bool = True) -> str:
    """LOGGER, LEVEL, EXPIRES (a level set with a ttl); wide adds the time it expires at."""
    now = time.time() if now is None else now
    table = []
    for row in rows:
        expires = row.get("expires")
        left = at = ""
        if isinstance(expires, int | float):
            left, at = f"in {short_duration(expires - now)}", _utc(expires)
        table.append((str(row.get("logger")), str(row.get("level")), left, at))
    return render(_COLUMNS, table, wide=wide, headers=headers)


_COLUMNS = (Column("LOGGER"), Column("LEVEL"), Column("EXPIRES"),
            Column("EXPIRES AT", wide=True))
EXIT_CODES = {0: "done", 1: "refused by the sidecar, or a bad level or logger",
              2: "the sidecar cannot be reached, or bad usage"}


def _utc(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``log`` command's sub-commands and options."""
    common = connection_options()
    sub = parser.add_subparsers(dest="log_command", required=True, metavar="COMMAND")
    listing = sub.add_parser("list", parents=[common], help="list every logger and its level",
                             exit_codes=EXIT_CODES)
    add_output_options(listing)
    listing.add_argument("--json", action="store_const", dest="output", const="json",
                         help="the same as -o json")
    setting = sub.add_parser("set", parents=[common], help="set a logger's level",
                             exit_codes=EXIT_CODES)
    setting.add_argument("logger", help="logger name, e.g. sidecar.etcd, aiohttp.access or root")
    setting.add_argument("level", help="trace, debug, info, warn/warning, error, fatal or panic")
    setting.add_argument("--ttl", default=None,
                         help="revert after this long, e.g. 15m (the level from before returns)")
    reset = sub.add_parser("reset", parents=[common], exit_codes=EXIT_CODES,
                           help="return a logger to its configured level")
    reset.add_argument("logger")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 done, 1 refused or bad request, 2 sidecar unreachable."""
    base = args.url or default_url()
    try:
        token = token_from_args(args)
        if args.log_command == "list":
            rows = call("GET", f"{base.rstrip('/')}/log/list", token)
            print(to_json(rows) if args.output == "json" else
                  format_levels(rows, wide=args.output == "wide", headers=not args.no_headers))
            return 0
        if args.log_command == "set":
            parse_level(args.level)
            url = logger_url(base, args.logger, args.level)
            if args.ttl:
                url += "?" + urllib.parse.urlencode({"ttl": args.ttl})
            row = call("PUT", url, token)
        else:
            row = call("DELETE", logger_url(base, args.logger), token)
    except InvalidLevelError as exc:
        print(f"sidecar: {exc}", file=sys.stderr)
        return 1
    except RemoteError as exc:
        print(f"sidecar: {exc}", file=sys.stderr)
        return 2 if exc.status is None else 1
    print(format_change(row))
    return 0


def format_change(row: dict[str, Any], now: float | None = None) -> str:
    """``sidecar.etcd: debug (reverts in 15m00s)``."""
    now = time.time() if now is None else now
    text = f"{row.get('logger')}: {row.get('level')}"
    expires = row.get("expires")
    if isinstance(expires, int | float):
        text += f" (reverts in {short_duration(expires - now)})"
    return text

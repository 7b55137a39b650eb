"""``sidecar log ...``: the log manager's REST API from the command line.

Standard library only (urllib), so the command answers in well under a
second even on a small pod.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .levels import InvalidLevelError, parse_level

TOKEN_ENV = "SIDECAR_ADMIN_TOKEN"


def default_url() -> str:
    """The local sidecar: port from ``HTTP_PORT`` (as ``sidecar run`` uses it), else 9191."""
    return f"http://127.0.0.1:{os.environ.get('HTTP_PORT') or 9191}"


class RemoteError(Exception):
    """The sidecar refused or could not be reached; ``status`` is None when unreachable."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def call(method: str, url: str, token: str | None = None, timeout: float = 5.0) -> Any:
    """One request; the decoded JSON answer, or :class:`RemoteError` with the server's reason."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            body = reply.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()
        try:
            reason = json.loads(detail).get("error") or detail.decode(errors="replace")
        except (ValueError, AttributeError):
            reason = detail.decode(errors="replace").strip() or exc.reason
        raise RemoteError(f"{method} {url}: {exc.code} {reason}", exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RemoteError(f"cannot reach {url}: {reason}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise RemoteError(f"{method} {url}: the answer is not JSON") from None


def logger_url(base: str, logger: str, *parts: str) -> str:
    path = "/".join(urllib.parse.quote(p, safe="") for p in (logger, *parts))
    return f"{base.rstrip('/')}/log/{path}"


def format_levels(rows: list[dict[str, Any]], now: float | None = None) -> str:
    now = time.time() if now is None else now
    width = max([len("LOGGER"), *(len(str(r.get("logger"))) for r in rows)])
    lines = [f"{'LOGGER':<{width}}  {'LEVEL':<7}  EXPIRES"]
    for row in rows:
        expires = row.get("expires")
        shown = f"in {_duration(expires - now)}" if isinstance(expires, int | float) else ""
        lines.append(f"{row.get('logger')!s:<{width}}  {row.get('level')!s:<7}  {shown}".rstrip())
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = max(round(seconds), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def connection_options(parser: argparse.ArgumentParser | None = None,
                       default: object = None) -> argparse.ArgumentParser:
    """``--url``, ``--token``, ``--token-file`` on ``parser``, or on a new parent parser for
    commands that call the local sidecar (``sidecar log``, ``sidecar programs``).
    ``default=argparse.SUPPRESS`` lets the options stand before and after a sub-command."""
    common = parser or argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=default,
                        help="base URL of the sidecar's REST API "
                             "(default http://127.0.0.1:$HTTP_PORT, else port 9191)")
    common.add_argument("--token", default=default,
                        help=f"admin bearer token (env {TOKEN_ENV}); not needed from loopback")
    common.add_argument("--token-file", default=default,
                        help="read the admin token from this file")
    return common


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``log`` command's sub-commands and options."""
    common = connection_options()
    sub = parser.add_subparsers(dest="log_command", required=True)
    listing = sub.add_parser("list", parents=[common], help="list every logger and its level")
    listing.add_argument("--json", action="store_true", help="print the raw JSON")
    setting = sub.add_parser("set", parents=[common], help="set a logger's level")
    setting.add_argument("logger", help="logger name, e.g. sidecar.etcd, aiohttp.access or root")
    setting.add_argument("level", help="trace, debug, info, warn/warning, error, fatal or panic")
    setting.add_argument("--ttl", default=None,
                         help="revert after this long, e.g. 15m (the level from before returns)")
    reset = sub.add_parser("reset", parents=[common],
                           help="return a logger to its configured level")
    reset.add_argument("logger")


def run(args: argparse.Namespace) -> int:
    """Exit status: 0 done, 1 refused or bad request, 2 sidecar unreachable."""
    base = args.url or default_url()
    try:
        token = token_from_args(args)
        if args.log_command == "list":
            rows = call("GET", f"{base.rstrip('/')}/log/list", token)
            print(json.dumps(rows, indent=2) if args.json else format_levels(rows))
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
        text += f" (reverts in {_duration(expires - now)})"
    return text


def token_from_args(args: argparse.Namespace) -> str | None:
    """``--token``, else the file of ``--token-file``, else ``$SIDECAR_ADMIN_TOKEN``."""
    if args.token:
        return str(args.token)
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as handle:
                return handle.read().strip() or None
        except OSError as exc:
            raise RemoteError(f"--token-file {args.token_file}: {exc.strerror or exc}", 0)\
                from None
    return os.environ.get(TOKEN_ENV) or None

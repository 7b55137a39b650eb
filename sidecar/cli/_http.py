"""What the commands that call the local sidecar share: its URL, the admin token, one
request, and how they show a duration.

Standard library only (urllib), so that a command answers in well under a second
even on a small pod.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from typing import Any

TOKEN_ENV = "SIDECAR_ADMIN_TOKEN"
#: A file holding the token: the chart sets it in the sidecar container when the
#: token is required, so that ``kubectl exec ... sidecar log set`` works there.
TOKEN_FILE_ENV = "SIDECAR_ADMIN_TOKEN_FILE"


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
                        help=f"admin bearer token (env {TOKEN_ENV}); not needed from loopback "
                             "unless the sidecar requires it")
    common.add_argument("--token-file", default=default,
                        help=f"read the admin token from this file (env {TOKEN_FILE_ENV})")
    return common


def token_from_args(args: argparse.Namespace) -> str | None:
    """``--token``, else the file of ``--token-file``, else ``$SIDECAR_ADMIN_TOKEN``,
    else the file of ``$SIDECAR_ADMIN_TOKEN_FILE``."""
    if args.token:
        return str(args.token)
    if args.token_file:
        return _read_token(args.token_file, "--token-file")
    if token := os.environ.get(TOKEN_ENV):
        return token
    if path := os.environ.get(TOKEN_FILE_ENV):
        return _read_token(path, f"${TOKEN_FILE_ENV}")
    return None


def _read_token(path: str, source: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    except OSError as exc:
        raise RemoteError(f"{source} {path}: {exc.strerror or exc}", 0) from None


def short_duration(seconds: float) -> str:
    """``45s``, ``14m59s``, ``3h05m``, ``2d04h``: a time left or an uptime, to the second."""
    days, rest = divmod(max(round(seconds), 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"

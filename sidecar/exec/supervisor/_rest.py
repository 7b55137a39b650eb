"""The supervisor's REST routes: listing is open, starting and stopping programs is admin."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from aiohttp import web

from sidecar.config import parse_duration
from sidecar.logging.audit import audit
from sidecar.rest.api import (
    HTTPHandlers,
    Parameter,
    Response,
    RouteDoc,
    admin_caller,
    error_response,
    time_left,
)

from .errors import ProgramNotFoundError, ProgramStartError, SupervisorError
from .output import KEEP_LINES, OutputLog, follow_file


class Programs(Protocol):
    """What the routes need of the supervisor: its rows, and the three actions."""

    def status(self) -> dict[str, Any]: ...

    def program_rows(self) -> list[dict[str, Any]]: ...

    def program_row(self, name: str) -> dict[str, Any]: ...

    def begin(self, name: str, action: str) -> asyncio.Task[bool]: ...

    def program_log(self, name: str) -> tuple[Path | None, OutputLog]: ...


ACTIONS = ("start", "stop", "restart")

# OpenAPI documentation of the routes (GET /openapi.json).
_NULLABLE_INT: dict[str, Any] = {"type": "integer", "nullable": True}
_PROGRAM: dict[str, Any] = {
    "type": "object",
    "required": ["name", "state", "running", "pid", "restarts", "uptime", "healthy"],
    "properties": {
        "name": {"type": "string"},
        "state": {"type": "string", "description": "while it runs the process state (running, "
                  "sleeping, idle, ...) or stopping; else stopped, backoff, exited, gave-up "
                  "or failed"},
        "running": {"type": "boolean"},
        "pid": {**_NULLABLE_INT, "description": "null when not running"},
        "restarts": {"type": "integer", "description": "automatic restarts so far"},
        "uptime": {"type": "number", "description": "seconds since the last start; 0 when "
                   "not running"},
        "start_time": {"type": "number", "nullable": True, "description": "Unix seconds"},
        "exit_code": {**_NULLABLE_INT, "description": "of the last run that ended; -N: "
                      "killed by signal N"},
        "healthy": {"type": "boolean", "description": "its status check (program:<name>) is "
                    "OK"},
        "error": {"type": "string", "nullable": True, "description": "why it is not healthy"},
        "command": {"type": "string"},
        "args": {"type": "array", "items": {"type": "string"}},
        "logfile": {"type": "string", "nullable": True},
        "autostart": {"type": "boolean"},
        "pending": {"type": "string", "nullable": True,
                    "description": "the start, stop or restart asked for and not finished "
                                   "yet (it runs to its end whatever happens to the request "
                                   "that asked); null when none"},
    },
}
#: Seconds kept back from request-timeout to answer 202 before it would answer 503.
_ANSWER_MARGIN = 0.25
_NAME = Parameter("name", "the program's name in supervisor.conf")
_NOT_FOUND = Response.error("no program of this name (programs lists the known ones)")
OVERVIEW_DOC = RouteDoc(
    "The supervisor: its config, hooks and programs",
    {200: Response.json("config source and reloads, hook counts, every program",
                        {"type": "object", "properties": {
                            "config": {"type": "object"}, "hooks": {"type": "object"},
                            "programs": {"type": "array", "items": _PROGRAM}}})},
    tags=("supervisor",))
LIST_DOC = RouteDoc(
    "Every program, sorted by name",
    {200: Response.json("one row per program", {"type": "array", "items": _PROGRAM})},
    tags=("supervisor",))
ONE_DOC = RouteDoc(
    "One program",
    {200: Response.json("the program's row", _PROGRAM), 404: _NOT_FOUND},
    parameters=(_NAME,), tags=("supervisor",))
CONTROL_DOC = RouteDoc(
    "Start, stop or restart a program",
    {200: Response.json("the program after the action; changed says if it did anything",
                        {"type": "object", "properties": {
                            "program": _PROGRAM, "action": {"type": "string"},
                            "changed": {"type": "boolean"}}}),
     202: Response.json("the action has begun and runs on (a stop waits up to the program's "
                        "stop-timeout): watch the program's row at Location (and watch) "
                        "until its pending is null",
                        {"type": "object", "properties": {
                            "program": _PROGRAM, "action": {"type": "string"},
                            "watch": {"type": "string"}}}),
     400: Response.error("wait is not a duration"),
     404: _NOT_FOUND,
     500: Response.error("the program could not be started (program shows its row)"),
     503: Response.error("the supervisor is stopping with the sidecar")},
    description="The action runs to its end whatever happens to this request. The answer "
                "waits for it up to wait (default: until request-timeout is near), then "
                "is 202 with where to watch it.",
    parameters=(_NAME, Parameter("action", "start, stop or restart"),
                Parameter("wait", "longest wait for the action before answering 202, such as "
                          "5s; 0: answer 202 at once", location="query")),
    tags=("supervisor",))

LOG_DOC = RouteDoc(
    "A program's output: its last lines, then (follow) every new line as it is written",
    {200: Response.text("lines of text; with follow the answer goes on until the client "
                        "leaves, the program is removed or the sidecar stops"),
     400: Response.error("lines or follow is not valid"),
     404: _NOT_FOUND},
    description="The program's logfile (logfile-path), else what the sidecar keeps of the "
                f"output it prints behind [name] (the last {KEEP_LINES} lines).",
    parameters=(_NAME,
                Parameter("lines", "how many of the last lines first (default 10)", "query",
                          schema={"type": "integer", "minimum": 0}),
                Parameter("follow", "go on with new lines (default false)", "query",
                          schema={"type": "boolean"})),
    tags=("supervisor",))


def register_routes(rest: HTTPHandlers, supervisor: Programs) -> None:
    async def overview(request: web.Request) -> web.Response:
        return web.json_response(supervisor.status())

    async def list_programs(request: web.Request) -> web.Response:
        return web.json_response(supervisor.program_rows())

    async def one_program(request: web.Request) -> web.Response:
        try:
            return web.json_response(supervisor.program_row(request.match_info["name"]))
        except ProgramNotFoundError as exc:
            return _not_found(exc)

    async def control(request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        caller = admin_caller(request)
        response, result = await _control(name, action, request)
        # One audit line per request, with what came of it (also of a refused one).
        audit(f"program.{action}", "program %s: %s (%s)", name, action, result, caller=caller,
              program=name, action=action, status=response.status, result=result)
        return response

    async def _control(name: str, action: str,
                       request: web.Request) -> tuple[web.Response, str]:
        try:
            wait = _wait(request)
        except ValueError as exc:
            return error_response(400, f"wait: {exc}"), "bad request"
        try:
            operation = supervisor.begin(name, action)
        except ProgramNotFoundError as exc:
            return _not_found(exc), "no such program"
        except SupervisorError as exc:  # stopping with the sidecar
            return error_response(503, str(exc)), "refused: the supervisor is stopping"
        # Waiting never cancels the operation: it is the supervisor's task, not ours.
        done, _ = await asyncio.wait({operation}, timeout=wait)
        if not done:
            watch = f"/supervisor/programs/{quote(name, safe='')}"
            return web.json_response(
                {"program": supervisor.program_row(name), "action": action, "watch": watch},
                status=202, headers={"Location": watch}), "pending"
        try:
            changed = operation.result()
        except ProgramNotFoundError as exc:  # removed by a reload before its turn came
            return _not_found(exc), "no such program"
        except ProgramStartError as exc:
            return (error_response(500, str(exc), program=supervisor.program_row(name)),
                    f"failed: {exc}")
        except SupervisorError as exc:  # stopping with the sidecar
            return error_response(503, str(exc)), "refused: the supervisor is stopping"
        return web.json_response({"program": supervisor.program_row(name), "action": action,
                                  "changed": changed}), "changed" if changed else "unchanged"

    async def program_log(request: web.Request) -> web.StreamResponse:
        try:
            lines, follow = _log_query(request)
        except ValueError as exc:
            return error_response(400, str(exc))
        try:
            path, output = supervisor.program_log(request.match_info["name"])
        except ProgramNotFoundError as exc:
            return _not_found(exc)
        stream = (follow_file(path, lines, follow, output.closed) if path is not None else
                  output.follow(lines) if follow else _aiter(output.last(lines)))
        response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):  # the client left: nothing to answer
            async for line in stream:
                await response.write(f"{line}\n".encode())
            await response.write_eof()
        return response

    rest.register("GET", "/supervisor", overview, name="supervisor", doc=OVERVIEW_DOC)
    rest.register("GET", "/supervisor/programs", list_programs, name="supervisor-programs",
                  doc=LIST_DOC)
    rest.register("GET", "/supervisor/programs/{name}", one_program, name="supervisor-program",
                  doc=ONE_DOC)
    rest.register("POST", "/supervisor/programs/{name}/{action:start|stop|restart}", control,
                  admin=True, name="supervisor-program-control", doc=CONTROL_DOC)
    # Admin: a program's output may hold what only its operators should read. Unbounded:
    # a follow lasts as long as the client wants.
    rest.register("GET", "/supervisor/programs/{name}/log", program_log, admin=True,
                  name="supervisor-program-log", doc=LOG_DOC, bounded=False)


def _wait(request: web.Request) -> float | None:
    """How long to wait for the action: ``?wait=``, and never past request-timeout (less
    a margin to answer); None: until it is done."""
    budget = time_left(request)
    if budget is not None:
        budget = max(budget - _ANSWER_MARGIN, 0.0)
    text = request.query.get("wait")
    if text is None:
        return budget
    wait = parse_duration(text)
    return wait if budget is None else min(wait, budget)


def _not_found(exc: ProgramNotFoundError) -> web.Response:
    return error_response(404, str(exc), programs=exc.known)


def _log_query(request: web.Request) -> tuple[int, bool]:
    text = request.query.get("lines", "10")
    try:
        lines = int(text)
    except ValueError:
        raise ValueError(f"lines: expected a number of lines, got {text!r}") from None
    if lines < 0:
        raise ValueError(f"lines: must not be negative, got {lines}")
    follow = request.query.get("follow", "false")
    if follow not in ("true", "false"):
        raise ValueError(f"follow: expected true or false, got {follow!r}")
    return lines, follow == "true"


async def _aiter(lines: list[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line

"""The supervisor's REST routes: listing is open, starting and stopping programs is admin."""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from sidecar.rest.api import HTTPHandlers, Parameter, Response, RouteDoc, error_response

from .errors import ProgramNotFoundError, ProgramStartError, SupervisorError


class Programs(Protocol):
    """What the routes need of the supervisor: its rows, and the three actions."""

    def status(self) -> dict[str, Any]: ...

    def program_rows(self) -> list[dict[str, Any]]: ...

    def program_row(self, name: str) -> dict[str, Any]: ...

    async def start_program(self, name: str) -> bool: ...

    async def stop_program(self, name: str) -> bool: ...

    async def restart_program(self, name: str) -> bool: ...


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
    },
}
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
     404: _NOT_FOUND,
     500: Response.error("the program could not be started (program shows its row)"),
     503: Response.error("the supervisor is stopping with the sidecar")},
    parameters=(_NAME, Parameter("action", "start, stop or restart")), tags=("supervisor",))


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
        try:
            if action == "start":
                changed = await supervisor.start_program(name)
            elif action == "stop":
                changed = await supervisor.stop_program(name)
            else:
                changed = await supervisor.restart_program(name)
        except ProgramNotFoundError as exc:
            return _not_found(exc)
        except ProgramStartError as exc:
            return error_response(500, str(exc), program=supervisor.program_row(name))
        except SupervisorError as exc:  # stopping with the sidecar
            return error_response(503, str(exc))
        return web.json_response({"program": supervisor.program_row(name), "action": action,
                                  "changed": changed})

    rest.register("GET", "/supervisor", overview, name="supervisor", doc=OVERVIEW_DOC)
    rest.register("GET", "/supervisor/programs", list_programs, name="supervisor-programs",
                  doc=LIST_DOC)
    rest.register("GET", "/supervisor/programs/{name}", one_program, name="supervisor-program",
                  doc=ONE_DOC)
    rest.register("POST", "/supervisor/programs/{name}/{action:start|stop|restart}", control,
                  admin=True, name="supervisor-program-control", doc=CONTROL_DOC)


def _not_found(exc: ProgramNotFoundError) -> web.Response:
    return error_response(404, str(exc), programs=exc.known)

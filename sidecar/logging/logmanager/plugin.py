"""The log manager plugin: ``/log/list``, ``PUT /log/<logger>/<level>``, ``DELETE /log/<logger>``.

Listing is open; changing a level is an admin route (the REST plugin's
allow-list or bearer token).
"""

from __future__ import annotations

import logging

from aiohttp import web
from prometheus_client import CollectorRegistry

from sidecar.agent.api import deps_among
from sidecar.config import format_duration, parse_duration
from sidecar.logging.levels import LEVELS, InvalidLevelError, level_name
from sidecar.rest.api import (
    HTTPHandlers,
    Parameter,
    Response,
    RouteDoc,
    admin_caller,
    error_response,
)

from .api import MAX_TTL
from .config import CN_INFRA_HOOKS, LogsConfig
from .errors import UnknownLoggerError
from .manager import LevelManager
from .metrics import LevelCollector

log = logging.getLogger("sidecar.logmanager")

_ROW_SCHEMA = {
    "type": "object",
    "required": ["logger", "level"],
    "properties": {
        "logger": {"type": "string"},
        "level": {"type": "string", "enum": ["trace", "debug", "info", "warning", "error",
                                             "fatal", "panic"]},
        "expires": {"type": "number",
                    "description": "Unix time when a level set with ttl reverts"},
    },
}
_LOGGER = Parameter("logger", "a logger name, such as sidecar.etcd (root for the root logger)")
LIST_DOC = RouteDoc(
    "Every logger of the process and its level",
    {200: Response.json("sorted by logger name", {"type": "array", "items": _ROW_SCHEMA})},
    tags=("log",))
SET_DOC = RouteDoc(
    "Set a logger's level, for a while with ttl",
    {200: Response.json("the logger's new level", _ROW_SCHEMA),
     400: Response.error("the level or the ttl is not valid (valid_levels lists the levels)"),
     404: Response.error("no such logger")},
    parameters=(_LOGGER,
                Parameter("level", "trace, debug, info, warn/warning, error, fatal or panic"),
                Parameter("ttl", "revert to the configured level after this long "
                                 "(500ms, 5s, 15m, or seconds; at most 168h)",
                          location="query")),
    tags=("log",))
RESET_DOC = RouteDoc(
    "Return a logger to its logs.conf level (or to inheriting)",
    {200: Response.json("the logger's level now", _ROW_SCHEMA),
     404: Response.error("no such logger")},
    parameters=(_LOGGER,),
    tags=("log",))


class LogManagerPlugin:
    """Applies ``logs.conf`` in ``init`` (first, so other plugins start at their levels)."""

    name = "logmanager"

    def __init__(
        self,
        rest: HTTPHandlers,
        config: LogsConfig | None = None,
        default_level: int | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.deps = deps_among(rest)
        self._rest = rest
        self.levels = LevelManager(config, default_level)
        self._hooks = sorted(config.hooks) if config is not None else []
        if registry is not None:
            collector = LevelCollector(self.levels)
            self.levels.add_listener(collector.changed)
            registry.register(collector)

    # -- handlers ------------------------------------------------------------
    async def list_loggers(self, request: web.Request) -> web.Response:
        return web.json_response([row.to_dict() for row in self.levels.list_all()])

    async def set_level(self, request: web.Request) -> web.Response:
        name = request.match_info["logger"]
        ttl: float | None = None
        ttl_text = request.query.get("ttl")
        if ttl_text is not None:
            try:
                ttl = parse_duration(ttl_text)
            except ValueError as exc:
                return error_response(400, f"ttl: {exc}")
            if not 0 < ttl <= MAX_TTL:
                return error_response(400, f"ttl: must be greater than zero and at most "
                                           f"{format_duration(MAX_TTL)}, got {ttl_text!r}")
        try:
            row = self.levels.set(name, request.match_info["level"], ttl,
                                  caller=admin_caller(request))
        except InvalidLevelError as exc:
            return error_response(400, str(exc), valid_levels=list(LEVELS))
        except UnknownLoggerError as exc:
            return error_response(404, str(exc))
        return web.json_response(row.to_dict())

    async def reset_level(self, request: web.Request) -> web.Response:
        try:
            row = self.levels.reset(request.match_info["logger"], caller=admin_caller(request))
        except UnknownLoggerError as exc:
            return error_response(404, str(exc))
        return web.json_response(row.to_dict())

    # -- lifecycle -----------------------------------------------------------
    async def init(self) -> None:
        self.levels.apply()
        self._rest.register("GET", "/log/list", self.list_loggers, name="log-list",
                            doc=LIST_DOC, expensive=True)
        self._rest.register("PUT", "/log/{logger:.+}/{level:[^/]+}", self.set_level,
                            admin=True, name="log-set", doc=SET_DOC)
        self._rest.register("DELETE", "/log/{logger:.+}", self.reset_level,
                            admin=True, name="log-reset", doc=RESET_DOC)
        log.debug("default log level %s", level_name(self.levels.default_level))
        if self._hooks:
            unknown = [name for name in self._hooks if name not in CN_INFRA_HOOKS]
            log.warning(
                "logs.conf: log hooks are not implemented by the sidecar, ignoring %s "
                "(every record goes to stderr: collect them from there)%s",
                ", ".join(self._hooks),
                f"; {', '.join(unknown)} not even by cn-infra "
                f"(it knows {', '.join(CN_INFRA_HOOKS)})" if unknown else "")

    async def after_init(self) -> None:
        pass

    async def close(self) -> None:
        self.levels.restore()


#: The name the log manager had before every plugin class was named ``…Plugin``.
LogManager = LogManagerPlugin

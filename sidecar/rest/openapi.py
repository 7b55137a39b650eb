"""The OpenAPI 3 document built from the routes' documentation.

Every plugin passes a :class:`~sidecar.rest.api.RouteDoc` when it registers a route; the REST
plugin serves the document at ``GET /openapi.json``. Path templates are
aiohttp's (``/log/{logger:.+}``): the document shows ``/log/{logger}`` and
keeps the regular expression as the parameter's ``pattern``.

    rest.register("GET", "/fleet/{label}", handler, name="fleet-agent", doc=RouteDoc(
        "One agent's status",
        parameters=(Parameter("label", "the agent's microservice label"),),
        responses={200: Response.json("the agent's status", AGENT_SCHEMA),
                   404: Response.error("no agent with this label")}))
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .api import Parameter, Response, RouteDoc

_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::((?:[^{}]|\{[^{}]*\})*))?\}")


@dataclass(frozen=True)
class RouteInfo:
    """A registered route as the REST plugin knows it."""

    method: str
    path: str
    name: str | None
    admin: bool
    doc: RouteDoc | None
    #: Answered from a short-lived render, 503 with Retry-After when too many run.
    expensive: bool = False


#: What aiohttp matches for a path variable without a regular expression of its own.
DEFAULT_VARIABLE_PATTERN = "[^{}/]+"


def split_path(path: str) -> tuple[str, dict[str, str]]:
    """``/log/{logger:.+}/{level}`` -> (``/log/{logger}/{level}``,
    {logger: '.+', level: '[^{}/]+'})."""
    variables: dict[str, str] = {}

    def plain(match: re.Match[str]) -> str:
        variables[match.group(1)] = match.group(2) or DEFAULT_VARIABLE_PATTERN
        return "{" + match.group(1) + "}"

    return _VARIABLE.sub(plain, path), variables


def _operation_id(route: RouteInfo) -> str:
    if route.name:
        return route.name
    words = re.findall(r"[A-Za-z0-9]+", route.path)
    return "-".join([route.method.lower(), *words]) or route.method.lower()


def _operation(route: RouteInfo, request_timeout: float | None) -> dict[str, Any]:
    openapi_path, variables = split_path(route.path)
    doc = route.doc
    if doc is None:
        doc = RouteDoc("undocumented", {200: Response("not documented by its plugin")})
    documented = {p.name: p for p in doc.parameters}
    parameters = [
        (documented.get(name) or Parameter(name, "")).to_dict(pattern)
        for name, pattern in variables.items()
    ]
    parameters += [p.to_dict() for p in doc.parameters if p.name not in variables]
    responses = {str(status): answer.to_dict() for status, answer in sorted(doc.responses.items())}
    if route.admin:
        responses.setdefault("401", Response.error(
            "admin route: the caller is outside admin-allow and sent no token").to_dict())
        responses.setdefault("403", Response.error(
            "admin route: the bearer token is wrong").to_dict())
    busy = []
    if request_timeout:
        busy.append(f"the handler did not finish within request-timeout ({request_timeout:g}s)")
    if route.expensive:
        busy.append("busy: too many expensive requests at once (retry after the Retry-After "
                    "header's seconds)")
    if busy:
        responses.setdefault("503", Response.error("; or ".join(busy)).to_dict())
    operation: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": doc.summary,
        "tags": list(doc.tags) or [openapi_path.strip("/").split("/")[0] or "root"],
        "responses": responses,
    }
    if doc.description:
        operation["description"] = doc.description
    if parameters:
        operation["parameters"] = parameters
    if route.admin:
        # Either the token or a peer in admin-allow (which needs no credentials: {}).
        operation["security"] = [{"adminToken": []}, {}]
    return operation


def openapi_document(routes: Iterable[RouteInfo], *, title: str, version: str,
                     description: str = "",
                     request_timeout: float | None = None) -> dict[str, Any]:
    """An OpenAPI 3.0 document of ``routes`` (undocumented ones say so in their summary)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        openapi_path, _ = split_path(route.path)
        paths.setdefault(openapi_path, {})[route.method.lower()] = _operation(
            route, request_timeout)
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version, "description": description},
        "paths": dict(sorted(paths.items())),
        "components": {"securitySchemes": {"adminToken": {
            "type": "http", "scheme": "bearer",
            "description": "admin-token (or admin-token-file) of http.conf; callers in "
                           "admin-allow need none"}}},
    }

"""GET /openapi.json: every route the sidecar serves is documented, and the document is valid."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from openapi_spec_validator import validate

from sidecar.builder import CONFIG_NAMES, Options, Sidecar, build
from sidecar.rest import HTTPConfig, Response, RestPlugin, RouteDoc
from sidecar.rest.openapi import split_path
from tests.servers._util import free_port
from tests.sidecar_proc import SidecarProcess


def every_plugin_config(directory: Path) -> Path:
    """A config dir that turns on every plugin the builder knows (servers need not run).

    A new entry of CONFIG_NAMES must get a line here, so that its routes are checked too.
    """
    dead = f"127.0.0.1:{free_port()}"
    kubeconfig = directory / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://{dead}",
                                               "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u",
                                               "namespace": "ns"}}]}))
    templates = directory / "templates"
    templates.mkdir()
    configs = {
        "http": "endpoint: 127.0.0.1:0\n",
        "servicelabel": "default: openapi-test\n",
        "statuscheck": "probe-interval: 1s\n",
        "etcd": f"endpoints: ['{dead}']\ndial-timeout: 200ms\n",
        "logs": "default-level: warning\n",
        "metrics": "enabled: true\n",
        "kafka": f"addrs: ['{dead}']\n",
        "process-manager": f"template-path: {templates}\n",
        "supervisor": "programs: []\n",
        "k8s": f"kubeconfig: {kubeconfig}\npod-name: p\nnamespace: ns\n",
        "fleet": "enabled: true\n",
    }
    missing = set(CONFIG_NAMES) - set(configs)
    assert not missing, f"add a minimal config for {sorted(missing)} to every_plugin_config"
    config = directory / "config"
    config.mkdir()
    for name, text in configs.items():
        (config / f"{name}.conf").write_text(text)
    return config


@pytest.fixture
async def full_sidecar(tmp_path: Path) -> AsyncIterator[Sidecar]:
    sidecar = build(Options(config_dir=str(every_plugin_config(tmp_path)), env={}))
    agent = sidecar.agent()
    await agent.start()
    try:
        yield sidecar
    finally:
        await agent.stop()


async def test_every_registered_route_has_a_doc(full_sidecar: Sidecar) -> None:
    routes = full_sidecar.rest.routes
    assert len(routes) >= 10
    undocumented = [f"{r.method} {r.path}" for r in routes if r.doc is None]
    assert not undocumented, f"routes without a RouteDoc (pass doc= to register): {undocumented}"
    # Each path parameter is described, not just listed.
    for route in routes:
        assert route.doc is not None
        _, variables = split_path(route.path)
        described = {p.name for p in route.doc.parameters if p.description}
        assert set(variables) <= described, f"{route.method} {route.path}: describe {variables}"


async def test_the_document_is_valid_openapi_and_lists_every_route(
        full_sidecar: Sidecar) -> None:
    document = full_sidecar.rest.openapi()
    validate(document)
    listed = {(method.upper(), path) for path, operations in document["paths"].items()
              for method in operations}
    registered = {(r.method, split_path(r.path)[0]) for r in full_sidecar.rest.routes}
    assert listed == registered
    for must in ("/liveness", "/readiness", "/openapi.json", "/metrics", "/log/list",
                 "/log/{logger}/{level}", "/fleet", "/fleet/{label}", "/debug/startup-trace"):
        assert must in document["paths"], must
    set_level = document["paths"]["/log/{logger}/{level}"]["put"]
    assert set_level["security"] == [{"adminToken": []}, {}]
    assert {"200", "400", "401", "403", "404"} <= set(set_level["responses"])
    level = next(p for p in set_level["parameters"] if p["name"] == "level")
    assert level["schema"]["pattern"] == "^(?:[^/]+)$"
    ttl = next(p for p in set_level["parameters"] if p["name"] == "ttl")
    assert ttl["in"] == "query"
    assert "security" not in document["paths"]["/readiness"]["get"]


def test_served_over_http_without_credentials(config_dir: Path,
                                              sidecars: list[SidecarProcess]) -> None:
    (config_dir / "http.conf").write_text("admin-allow: []\nadmin-token: s3cret\n")
    proc = SidecarProcess(config_dir)
    sidecars.append(proc)
    proc.start()
    status, document = proc.get("/openapi.json")
    assert status == 200
    validate(document)
    assert document["info"]["title"] == "cninfra-sidecar"
    # Without etcd.conf or fleet.conf the fleet routes are not served, so not listed.
    assert "/fleet" not in document["paths"]
    assert proc.get("/debug/startup-trace")[0] == 401  # admin routes stay guarded
    assert proc.stop() == 0


async def test_a_route_without_doc_is_listed_as_undocumented() -> None:
    rest = RestPlugin(HTTPConfig(endpoint="127.0.0.1:0"))

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    rest.register("GET", "/custom/{item:\\d+}", handler)
    rest.register("POST", "/documented", handler, admin=True, doc=RouteDoc(
        "Documented", {201: Response.error("made")}))
    document = rest.openapi()
    validate(document)
    custom = document["paths"]["/custom/{item}"]["get"]
    assert custom["summary"] == "undocumented"
    assert custom["parameters"][0]["schema"]["pattern"] == "^(?:\\d+)$"
    assert [r.path for r in rest.routes if r.doc is None] == ["/custom/{item:\\d+}"]
    assert set(document["paths"]["/documented"]["post"]["responses"]) == {
        "201", "401", "403", "503"}


def test_route_doc_needs_a_summary_and_responses() -> None:
    with pytest.raises(ValueError, match="summary"):
        RouteDoc(" ", {200: Response("ok")})
    with pytest.raises(ValueError, match="at least one response"):
        RouteDoc("Something", {})

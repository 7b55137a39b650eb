"""The REST plugin: admin guard, body size limit, request timeout, listening errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from sidecar.rest import AdminAccess, HTTPConfig, RestPlugin, Verdict
from tests.servers._util import free_port


def test_access_rules() -> None:
    access = AdminAccess(["127.0.0.1/32", "10.1.0.0/16"], token="s3cret")
    assert access.check("127.0.0.1", None) is Verdict.ALLOWED
    assert access.check("::ffff:127.0.0.1", None) is Verdict.ALLOWED
    assert access.check("10.1.2.3", None) is Verdict.ALLOWED
    assert access.check("127.0.0.2", None) is Verdict.NEEDS_TOKEN
    assert access.check("127.0.0.2", "Bearer s3cret") is Verdict.ALLOWED
    assert access.check("127.0.0.2", "Bearer wrong") is Verdict.BAD_TOKEN
    assert access.check("127.0.0.2", "Basic s3cret") is Verdict.BAD_TOKEN
    assert AdminAccess(["127.0.0.1/32"]).check("127.0.0.2", "Bearer x") is Verdict.BAD_TOKEN


def test_admin_routes_closed_to_everyone_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    RestPlugin(HTTPConfig(admin_allow=[], admin_token="t0ken"))
    RestPlugin(HTTPConfig(admin_allow=["127.0.0.1/32"]))
    assert not caplog.records
    rest = RestPlugin(HTTPConfig(admin_allow=[]))
    assert rest.access.check("127.0.0.1", None) is Verdict.NEEDS_TOKEN
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert "admin-allow is empty and neither admin-token nor admin-token-file is set" \
        in record.getMessage()


@pytest.fixture
async def server() -> AsyncIterator[tuple[RestPlugin, str]]:
    config = HTTPConfig(endpoint=f"127.0.0.1:{free_port()}", admin_allow=["127.0.0.1/32"],
                        admin_token="t0ken", max_body_size=1024, request_timeout=0.3)
    rest = RestPlugin(config)

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(text="late")

    rest.register("PUT", "/admin/echo", echo, admin=True)
    rest.register("POST", "/echo", echo)
    rest.register("GET", "/slow", slow)
    await rest.init()
    await rest.after_init()
    yield rest, f"http://127.0.0.1:{rest.port}"
    await rest.close()


async def test_admin_route_from_outside_the_allow_list(server: tuple[RestPlugin, str]) -> None:
    _, url = server
    outside = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=outside) as client:
        async with client.put(url + "/admin/echo", data=b"x") as reply:
            assert reply.status == 401
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        async with client.put(url + "/admin/echo", data=b"x",
                              headers={"X-Forwarded-For": "127.0.0.1"}) as reply:
            assert reply.status == 401
        async with client.put(url + "/admin/echo", data=b"x",
                              headers={"Authorization": "Bearer nope"}) as reply:
            assert reply.status == 403
        async with client.put(url + "/admin/echo", data=b"x",
                              headers={"Authorization": "Bearer t0ken"}) as reply:
            assert reply.status == 200
    async with aiohttp.ClientSession() as client, \
            client.put(url + "/admin/echo", data=b"local") as reply:
        assert reply.status == 200
        assert await reply.read() == b"local"


async def test_body_over_the_limit_is_refused(server: tuple[RestPlugin, str]) -> None:
    _, url = server
    async with aiohttp.ClientSession() as client:
        async with client.post(url + "/echo", data=b"x" * 2048) as reply:
            assert reply.status == 413
        async with client.post(url + "/echo", data=b"x" * 100) as reply:
            assert reply.status == 200


async def test_slow_handler_is_cut_off(server: tuple[RestPlugin, str]) -> None:
    _, url = server
    async with aiohttp.ClientSession() as client, client.get(url + "/slow") as reply:
        assert reply.status == 503
        assert "longer than 0.3s" in (await reply.json())["error"]


async def test_port_in_use_is_a_clear_error(server: tuple[RestPlugin, str]) -> None:
    rest, _ = server
    other = RestPlugin(HTTPConfig(endpoint=f"127.0.0.1:{rest.port}"))
    with pytest.raises(OSError, match=rf"cannot listen on 127.0.0.1:{rest.port}"):
        await other.after_init()


def test_routes_after_start_are_refused() -> None:
    rest = RestPlugin()
    rest._runner = object()  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="after the server started"):
        rest.register("GET", "/late", lambda r: None)  # type: ignore[arg-type,return-value]

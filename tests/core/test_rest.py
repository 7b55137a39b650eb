"""The REST plugin: admin guard, body size limit, request timeout, listening errors."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from sidecar.rest import AdminAccess, HTTPConfig, RestPlugin, Verdict
from tests.servers._util import free_port
from tests.servers.tls import make_pki


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
    # A wrong token is refused even from the allow-list; another scheme is not ours to judge.
    assert access.check("127.0.0.1", "Bearer wrong") is Verdict.BAD_TOKEN
    assert access.check("127.0.0.1", "Basic dXNlcjpwdw==") is Verdict.ALLOWED
    assert AdminAccess(["127.0.0.1/32"]).check("127.0.0.1", "Bearer x") is Verdict.ALLOWED


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


async def test_expensive_routes_share_a_render_and_turn_away_a_crowd() -> None:
    rest = RestPlugin(HTTPConfig(endpoint="127.0.0.1:0", render_cache=60.0,
                                 render_concurrency=2))
    renders = 0

    async def report(request: web.Request) -> web.Response:
        nonlocal renders
        renders += 1
        await asyncio.sleep(0.3)  # a render that awaits (as one reading a store would)
        return web.json_response({"render": renders})

    async def change(request: web.Request) -> web.Response:
        return web.json_response({})

    rest.register("GET", "/report", report, expensive=True)
    rest.register("PUT", "/change", change)
    await rest.init()
    await rest.after_init()
    url = f"http://127.0.0.1:{rest.port}"
    try:
        async with aiohttp.ClientSession() as client:
            async def fetch(path: str) -> tuple[int, str | None, bytes]:
                async with client.get(url + path) as reply:
                    return reply.status, reply.headers.get("Retry-After"), await reply.read()

            crowd = await asyncio.gather(*(fetch("/report") for _ in range(5)))
            assert sorted(status for status, _, _ in crowd) == [200, 200, 503, 503, 503]
            assert {after for status, after, _ in crowd if status == 503} == {"1"}
            assert renders == 2
            # Within render-cache the same URL is answered from the last render...
            assert (await fetch("/report"))[2] in {body for s, _, body in crowd if s == 200}
            assert renders == 2
            # ...another URL (or other negotiated headers) is its own render...
            assert (await fetch("/report?x=1"))[0] == 200
            assert renders == 3
            # ...and a change made through the API makes every render fresh.
            async with client.put(url + "/change") as reply:
                assert reply.status == 200
            assert json.loads((await fetch("/report"))[2]) == {"render": 4}
        assert rest.stats.busy == {"/report": 3}
        assert rest.stats.cached == {"/report": 1}
        busy_doc = rest.openapi()["paths"]["/report"]["get"]["responses"]["503"]
        assert "busy" in busy_doc["description"]
    finally:
        await rest.close()


async def test_a_body_over_the_limit_gets_413_on_every_route(
        server: tuple[RestPlugin, str]) -> None:
    """Handlers that never read their body answered 200 to any size."""
    rest, url = server
    big = b"x" * 2048
    async with aiohttp.ClientSession() as client:
        for method, path in [("GET", "/slow"), ("PUT", "/admin/echo"), ("POST", "/echo"),
                             ("DELETE", "/nowhere"), ("GET", "/openapi.json")]:
            async with client.request(method, url + path, data=big) as reply:
                assert reply.status == 413, (method, path)
                assert "max-body-size (1024 bytes)" in (await reply.json())["error"]

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(4):
                    yield b"y" * 512

            async with client.request(method, url + path, data=chunks()) as reply:
                assert reply.status == 413, (method, path, "chunked")
    assert rest.stats.too_large == 10


async def test_no_version_in_the_server_header(server: tuple[RestPlugin, str]) -> None:
    _, url = server
    port = int(url.rsplit(":", 1)[1])
    async with aiohttp.ClientSession() as client:
        for path in ("/openapi.json", "/nowhere"):
            async with client.get(url + path) as reply:
                assert reply.headers["Server"] == "cninfra-sidecar"
    # Also where no route is involved: a request aiohttp cannot parse.
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n")
    head = (await reader.read(4096)).decode("latin-1")
    writer.close()
    assert head.split(" ", 2)[1] == "400"
    assert "Server: cninfra-sidecar\r\n" in head
    assert "Python" not in head and "aiohttp" not in head


async def test_a_malformed_authorization_header_is_a_400(server: tuple[RestPlugin, str]) -> None:
    rest, url = server
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"PUT /admin/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                 b"Authorization: Bearer \xff\xfe\r\n\r\n")
    head = (await reader.read(4096)).decode("latin-1")
    writer.close()
    assert head.startswith("HTTP/1.1 400"), head
    assert "malformed Authorization header" in head
    assert rest.stats.admin_refused == {"malformed": 1}


async def test_a_body_cut_short_is_no_error_in_the_log(
        server: tuple[RestPlugin, str], caplog: pytest.LogCaptureFixture) -> None:
    _, url = server
    port = int(url.rsplit(":", 1)[1])

    def send(raw: bytes) -> bytes:
        import socket

        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(raw)
            sock.shutdown(socket.SHUT_WR)  # the client is done: the body never ends
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    for raw in (b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
                b"GET /slow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"):
        await asyncio.to_thread(send, raw)
    await asyncio.sleep(0.1)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_https_with_the_configured_certificate(tmp_path: Path) -> None:
    pki = await asyncio.to_thread(make_pki, tmp_path / "pki")
    rest = RestPlugin(HTTPConfig(endpoint="127.0.0.1:0", server_cert_file=str(pki.server_cert),
                                 server_key_file=str(pki.server_key)))
    await rest.init()
    await rest.after_init()
    try:
        trust = ssl.create_default_context(cafile=str(pki.ca))
        async with aiohttp.ClientSession() as client:
            async with client.get(f"https://127.0.0.1:{rest.port}/openapi.json",
                                  ssl=trust) as reply:
                assert reply.status == 200
            # Plain HTTP on the TLS port gets no answer (a failed handshake), and no slot.
            with pytest.raises(aiohttp.ClientError):
                async with client.get(f"http://127.0.0.1:{rest.port}/openapi.json") as reply:
                    await reply.read()
        assert rest.stats.listener.accepted >= 2
    finally:
        await rest.close()

"""10,000 generated HTTP requests against real sidecars, driven by their own /openapi.json.

Hypothesis builds two kinds of requests and sends each over a raw socket:

* requests to the documented operations: path parameters from the documented
  patterns, known names and arbitrary text; documented and arbitrary query
  parameters; arbitrary headers (tokens right and wrong, huge values) and bodies.
  The answer must be one the document lists for the operation (or aiohttp's 400,
  405, 413, 431 for a request it refuses), and its JSON must match the schema;
* malformed requests: arbitrary methods, paths, versions, header lines, framing
  (bad Content-Length, broken chunks, truncated bodies).

No answer may be a 5xx (the probes' documented 503 aside), the sidecar may not
log a traceback or exit, and its probes, polled from a thread throughout, must
answer within the kubelet's 1 s. Two configurations: every plugin with routes,
admin from loopback; and admin by token only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator

from sidecar.rest import HTTPConfig, RestPlugin
from tests.probes import ProbePoller
from tests.servers.etcd import EtcdServer
from tests.sidecar_proc import SidecarProcess

TOKEN = "fuzz-t0ken"
#: Requests per configuration and kind; 10,000 in all.
FULL_OPERATIONS, FULL_MALFORMED = 3_500, 2_500
GUARDED_OPERATIONS, GUARDED_MALFORMED = 2_500, 1_500
#: Answers aiohttp itself gives to requests it refuses before any handler runs.
REFUSALS = {400, 405, 413, 414, 431}
READ_TIMEOUT = 5.0


# -- the document ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    spec: dict[str, Any]
    regex: re.Pattern[str]

    @property
    def path_params(self) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == "path"]

    @property
    def query_params(self) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p["in"] == "query"]


def operations(document: dict[str, Any]) -> list[Operation]:
    found = []
    for template, methods in document["paths"].items():
        for method, spec in methods.items():
            patterns = {p["name"]: p["schema"].get("pattern", "^(?:[^{}/]+)$")
                        for p in spec.get("parameters", []) if p["in"] == "path"}

            def group(match: re.Match[str], patterns: dict[str, str] = patterns) -> str:
                pattern = patterns.get(match.group(1), "^(?:[^{}/]+)$")
                return f"(?:{pattern.removeprefix('^').removesuffix('$')})"

            regex = re.compile(re.sub(r"\{([^}]+)\}", group, template))  # fullmatch, as aiohttp
            found.append(Operation(method.upper(), template, spec, regex))
    return found


_KEPT_ENCODED = re.compile(r"(%2[Ff5])")


def safe_path(raw_path: str) -> str:
    """What aiohttp matches routes against (yarl's ``path_safe``): the decoded path,
    but with ``%2F`` and ``%25`` kept, so that an encoded slash never splits segments."""
    parts = _KEPT_ENCODED.split(raw_path.split("?", 1)[0])
    return "".join(part.upper() if index % 2 else unquote(part)
                   for index, part in enumerate(parts))


def matching(ops: list[Operation], method: str, raw_path: str) -> list[Operation]:
    """The documented operations on this path."""
    path = safe_path(raw_path)
    return [op for op in ops
            if op.regex.fullmatch(path) and (method == "*" or op.method == method)]


# -- sending ----------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def send(port: int, raw: bytes, half_close: bool = False) -> Reply:
    """Send ``raw`` on a new connection and read the answer until the server closes.

    ``half_close`` ends the sending side too, for requests whose framing promises more
    than they send (aiohttp may then close without an answer, which is fine).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=READ_TIMEOUT) as sock:
        try:
            sock.sendall(raw)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server may answer and close before taking everything
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        except TimeoutError:
            # A followed program log (?follow=true) streams for as long as the client
            # stays: an answer whose head has come is an answer; silence is not.
            if b"\r\n\r\n" not in b"".join(chunks):
                raise
    data = b"".join(chunks)
    if not data:
        return Reply(None)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return Reply(status, headers, body)


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2:]
    return out


def request_bytes(method: str, target: str, headers: list[tuple[str, str]],
                  body: bytes) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


# -- strategies -------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
HEADER_NAME = st.text(st.sampled_from(TOKEN_CHARS), min_size=1, max_size=20)
HEADER_VALUE = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    st.integers(0, 12_000).map(lambda n: "v" * n))  # past aiohttp's 8190-byte field limit
AUTH = st.sampled_from([None, f"Bearer {TOKEN}", "Bearer wrong", "Basic Zm9vOmJhcg==",
                        "Bearer", "bearer " + TOKEN, ""])
BODY = st.one_of(
    st.just(b""), st.binary(max_size=200),
    st.builds(lambda v: json.dumps(v).encode(),
              st.recursive(st.none() | st.booleans() | st.integers() | TEXT,
                           lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(TEXT, inner, max_size=3), max_leaves=8)),
    st.integers(0, 1_100_000).map(lambda n: b"x" * n))  # to past max-body-size (1 MiB)


def encoded(text: str) -> str:
    return quote(text, safe="")


@st.composite
def path_value(draw: st.DrawFn, param: dict[str, Any], known: dict[str, list[str]]) -> str:
    choices = [TEXT.filter(bool).map(encoded)]
    pattern = param["schema"].get("pattern")
    if pattern:
        choices.append(st.from_regex(pattern, fullmatch=True).filter(bool).map(
            lambda t: quote(t, safe="/")))
    names = known.get(param["name"])
    if names:
        choices.append(st.sampled_from(names))
    return draw(st.one_of(choices))


@st.composite
def documented_request(draw: st.DrawFn, ops: list[Operation], known: dict[str, list[str]],
                       ) -> tuple[Operation, str, str, bytes]:
    op = draw(st.sampled_from(ops))
    path = op.template
    for param in op.path_params:
        path = path.replace("{" + param["name"] + "}", draw(path_value(param, known)), 1)
    query = []
    for param in op.query_params:
        if draw(st.booleans()):
            values = known.get(param["name"], [])
            value = draw(st.one_of(TEXT, *(st.sampled_from(values) for _ in values[:1])))
            query.append(f"{quote(param['name'])}={encoded(value)}")
    if draw(st.integers(0, 4)) == 0:
        query.append(f"{encoded(draw(TEXT))}={encoded(draw(TEXT))}")
    target = path + ("?" + "&".join(query) if query else "")
    method = op.method if draw(st.integers(0, 9)) else draw(st.sampled_from(
        ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"]))
    headers = [(name, value) for name, value in draw(st.lists(
        st.tuples(HEADER_NAME, HEADER_VALUE), max_size=4))
        if name.lower() not in ("content-length", "transfer-encoding", "host", "connection")]
    auth = draw(AUTH)
    if auth is not None:
        headers.append(("Authorization", auth))
    if draw(st.booleans()):
        headers.append(("X-Forwarded-For", "127.0.0.1"))
    if draw(st.booleans()):
        headers.append(("Accept-Encoding", "gzip"))
    body = draw(BODY) if draw(st.integers(0, 3)) == 0 else b""
    return op, method, target, request_bytes(method, target, headers, body)


@st.composite
def malformed_request(draw: st.DrawFn, ops: list[Operation]) -> bytes:
    method = draw(st.one_of(
        st.sampled_from(["GET", "PUT", "POST", "DELETE", "get", "BREW", "G ET", ""]),
        st.text(st.characters(max_codepoint=0xFF), max_size=12)))
    path = draw(st.one_of(
        st.sampled_from([op.template for op in ops]),
        st.sampled_from(["/", "//liveness", "/../../etc/passwd", "/log/%00/debug",
                         "/fleet/%2e%2e", "*", "http://evil/readiness", "/log/a/b/c/d/trace",
                         "/%", "/%zz", "/readiness?%", "/metrics?name[]=x&name[]"]),
        st.binary(max_size=60).map(lambda b: "/" + b.decode("latin-1")),
        st.integers(1, 20_000).map(lambda n: "/" + "a" * n)))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/9", "", "HTTX"]))
    header_lines = draw(st.lists(st.one_of(
        st.builds(lambda n, v: f"{n}: {v}", HEADER_NAME, HEADER_VALUE),
        st.sampled_from(["no colon here", ": empty name", " folded: line", "Content-Length: -1",
                         "Content-Length: 5", "Content-Length: 1, 2", "Content-Length: abc",
                         "Transfer-Encoding: chunked", "Transfer-Encoding: gzip, chunked",
                         "Expect: 100-continue", "Host:", "Upgrade: websocket"]),
        st.text(st.characters(max_codepoint=0xFF), max_size=40)), max_size=6))
    body = draw(st.one_of(st.just(b""), st.binary(max_size=100),
                          st.sampled_from([b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"0\r\n",
                                           b"ffffffff\r\nx"])))
    newline = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    head = newline.join([f"{method} {path} {version}".strip(), *header_lines])
    return (head + newline + newline).encode("latin-1", "replace") + body


# -- checks -----------------------------------------------------------------------------------

@dataclass
class Fuzz:
    proc: SidecarProcess
    document: dict[str, Any]
    ops: list[Operation] = field(init=False)
    sent: int = 0
    statuses: dict[int | None, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ops = operations(self.document)

    def check_alive(self) -> None:
        assert self.proc.proc is not None and self.proc.proc.poll() is None, \
            f"the sidecar exited:\n{self.proc.output()[-3000:]}"

    def deliver(self, raw: bytes, half_close: bool = False) -> Reply:
        begin = time.monotonic()
        reply = send(self.proc.port, raw, half_close)
        assert time.monotonic() - begin < READ_TIMEOUT, f"no answer or close to {raw[:200]!r}"
        self.sent += 1
        self.statuses[reply.status] = self.statuses.get(reply.status, 0) + 1
        return reply

    def check_no_5xx(self, raw: bytes, reply: Reply) -> None:
        if reply.status is None or reply.status < 500:
            return
        target = raw.split(b" ", 2)[1:2]
        probe = target and target[0].split(b"?")[0] in (b"/liveness", b"/readiness")
        assert reply.status == 503 and probe, (
            f"{reply.status} for {raw[:300]!r}: {reply.body[:500]!r}")

    def check_documented(self, op: Operation, method: str, target: str, raw: bytes,
                         reply: Reply) -> None:
        assert reply.status is not None, f"no answer to a well-formed request {raw[:300]!r}"
        matched = matching(self.ops, method, target)
        if not matched:
            # A generated value the route's pattern refuses, or another method: aiohttp's own
            # 404 or 405 (and HEAD, which it answers for GET routes).
            other = matching(self.ops, "*", target)
            allowed = REFUSALS | ({200, 503} if method == "HEAD" and other else set()) | (
                {405} if other else {404})
            assert reply.status in allowed, (
                f"{reply.status} for {raw[:300]!r} ({'405' if other else '404'} expected): "
                f"{reply.body[:300]!r}")
            return
        op = matched[0]
        documented = {int(code) for code in op.spec["responses"]}
        assert reply.status in documented | REFUSALS, (
            f"{method} {op.template}: {reply.status} is not documented "
            f"({sorted(documented)}) for {raw[:300]!r}: {reply.body[:300]!r}")
        answer = op.spec["responses"].get(str(reply.status), {})
        schema = answer.get("content", {}).get("application/json", {}).get("schema")
        if schema is None or method == "HEAD":
            return
        content_type = reply.headers.get("content-type", "")
        if reply.status in REFUSALS and content_type.startswith("text/plain"):
            return  # aiohttp refused the request (a header too large, ...) before the handler
        assert content_type.startswith("application/json"), reply
        errors = sorted(OAS30Validator(schema).iter_errors(json.loads(reply.body)),
                        key=lambda e: e.path)
        assert not errors, f"{method} {target} {reply.status}: {errors[0].message}"


def known_names(proc: SidecarProcess) -> dict[str, list[str]]:
    loggers = [row["logger"] for row in proc.get("/log/list")[1]][:30]
    names: dict[str, list[str]] = {
        "logger": loggers or ["root"],
        "level": ["trace", "debug", "info", "warn", "warning", "error", "fatal", "panic",
                  "verbose"],
        "ttl": ["1s", "15m", "0", "-1s", "soon"],
        "state": ["OK", "error", "2", "INIT,OK", "bogus"],
        "action": ["start", "stop", "restart", "kill"],
        "name[]": ["cninfra_plugin_state", "nope"],
        "lines": ["0", "3", "-1", "many"],
        "follow": ["false", "yes"],  # "true" streams until the client leaves
    }
    status, programs = proc.get("/supervisor/programs")
    if status == 200:
        names["name"] = [p["name"] for p in programs] + ["absent"]
    status, fleet = proc.get("/fleet")
    if status == 200:
        names["label"] = [a["label"] for a in fleet["agents"]] + ["absent"]
    return names


def run_fuzz(proc: SidecarProcess, operations_count: int, malformed_count: int) -> Fuzz:
    status, document = proc.get("/openapi.json")
    assert status == 200
    fuzz = Fuzz(proc, document)
    known = known_names(proc)
    quick = settings(deadline=None, database=None, derandomize=False, print_blob=True,
                     suppress_health_check=list(HealthCheck))

    @settings(quick, max_examples=operations_count)
    @given(documented_request(fuzz.ops, known))
    def documented(case: tuple[Operation, str, str, bytes]) -> None:
        op, method, target, raw = case
        reply = fuzz.deliver(raw)
        fuzz.check_no_5xx(raw, reply)
        fuzz.check_documented(op, method, target, raw, reply)
        if fuzz.sent % 250 == 0:
            fuzz.check_alive()

    @settings(quick, max_examples=malformed_count)
    @given(malformed_request(fuzz.ops))
    def malformed(raw: bytes) -> None:
        reply = fuzz.deliver(raw, half_close=True)
        fuzz.check_no_5xx(raw, reply)
        if fuzz.sent % 250 == 0:
            fuzz.check_alive()

    run: Callable[[], None]
    for run, count in ((documented, operations_count), (malformed, malformed_count)):
        before = fuzz.sent
        run()
        # Hypothesis may stop early when it has seen every distinct case; it never does here.
        assert fuzz.sent - before >= count * 0.95, (fuzz.sent - before, count)
    fuzz.check_alive()
    output = proc.output()
    assert "Traceback" not in output and "Error handling request" not in output, output[-5000:]
    return fuzz


def start(config_dir: Path, sidecars: list[SidecarProcess]) -> SidecarProcess:
    proc = SidecarProcess(config_dir, "--microservice-label", "fuzzed")
    sidecars.append(proc)
    return proc.start()


def test_fuzz_every_plugin_admin_from_loopback(etcd_server: EtcdServer, config_dir: Path,
                                              tmp_path: Path,
                                              sidecars: list[SidecarProcess]) -> None:
    (config_dir / "etcd.conf").write_text(f"endpoints: ['{etcd_server.endpoint}']\n")
    (config_dir / "fleet.conf").write_text("enabled: true\n")
    (config_dir / "supervisor.conf").write_text(json.dumps({"programs": [
        {"name": name, "executable-path": "/bin/sleep", "executable-args": ["3600"],
         "restarts": -1} for name in ("web", "worker")]}))
    templates = tmp_path / "templates"
    templates.mkdir()
    (config_dir / "process-manager.conf").write_text(f"template-path: {templates}\n")
    proc = start(config_dir, sidecars)
    with ProbePoller(proc.url) as probes:
        # Every plugin OK, the fleet view's etcd read included (readiness does not wait
        # for it: fleet only reports).
        probes.wait_for(lambda a: a.status == 200 and a.body["state"] == 1, 30,
                        "readiness 200 and every plugin OK")
        fuzz = run_fuzz(proc, FULL_OPERATIONS, FULL_MALFORMED)
    probes.assert_always_answered()
    assert fuzz.sent >= (FULL_OPERATIONS + FULL_MALFORMED) * 0.95
    assert set(fuzz.statuses) >= {200, 400, 404}, fuzz.statuses
    assert proc.stop() == 0


def test_fuzz_admin_by_token_only(config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    (config_dir / "http.conf").write_text(
        f"admin-allow: []\nadmin-token: {TOKEN}\nmax-body-size: 4096\n")
    proc = start(config_dir, sidecars)
    with ProbePoller(proc.url) as probes:
        probes.wait_for(lambda a: a.status == 200, 15, "readiness 200")
        fuzz = run_fuzz(proc, GUARDED_OPERATIONS, GUARDED_MALFORMED)
    probes.assert_always_answered()
    assert {401, 403} <= set(fuzz.statuses), fuzz.statuses
    assert proc.stop() == 0


async def test_a_malformed_request_is_a_400_and_no_error_in_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    rest = RestPlugin(HTTPConfig(endpoint="127.0.0.1:0"))
    await rest.init()
    await rest.after_init()
    try:
        caplog.set_level(logging.DEBUG)
        raw = request_bytes("GET", "/openapi.json", [("X-Big", "v" * 9000)], b"")
        reply = await asyncio.to_thread(send, rest.port, raw)
        assert reply.status == 400
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
        assert "refused a malformed request from 127.0.0.1: 400" in caplog.text
        assert (await asyncio.to_thread(send, rest.port, request_bytes(
            "GET", "/openapi.json", [], b""))).status == 200
    finally:
        await rest.close()

"""The smaller holes a hostile client or a bad file found, each against a real sidecar whose
probes are polled as the kubelet does (a new connection, 1 s timeout) throughout:

* bodies over max-body-size were answered 200 by routes that never read them;
* ``?ttl=nan``, ``inf``, ``1e309``, ``1e308``, ``999999999999h`` were accepted and put
  NaN/Infinity into the public /log/list JSON;
* a supervisor.conf that is not UTF-8 was ignored on hot reload without a word;
* a missing TLS certificate or key exited 1 with ``[Errno 2]`` and no file name;
* the Server header named the Python and aiohttp versions;
* a program's grandchildren outlive the sidecar unless something takes them down: the
  kernel in the container's PID namespace (the chart's process model), or the sidecar
  itself as a child subreaper (``subreaper: true``) on a graceful stop.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._wait import wait_until
from tests.probes import ProbePoller
from tests.servers._util import free_port
from tests.servers.tls import make_pki
from tests.sidecar_proc import SidecarProcess, request, run_sidecar

LIMIT = 1024
#: Path parameters of the documented routes, by name.
SAMPLES = {"name": "web", "action": "restart", "logger": "sidecar", "level": "debug",
           "label": "nobody"}


def start(config_dir: Path, sidecars: list[SidecarProcess], http_conf: str = "",
          *args: str) -> SidecarProcess:
    (config_dir / "http.conf").write_text(f"endpoint: 127.0.0.1:0\n{http_conf}")
    sidecar = SidecarProcess(config_dir, *args, probe_listener=True)
    sidecars.append(sidecar)
    sidecar.start()
    wait_until(lambda: "agent started" in sidecar.output(), 15, "the agent started")
    return sidecar


def raw_exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    return b"".join(chunks)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def documented_paths(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for template, methods in document["paths"].items():
        path = template
        for name, value in SAMPLES.items():
            path = path.replace("{" + name + "}", value)
        for method in methods:
            yield method.upper(), path


def test_a_body_over_max_body_size_gets_413_on_every_route(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    (config_dir / "supervisor.conf").write_text(
        "programs:\n  - name: web\n    executable-path: /bin/sleep\n"
        "    executable-args: ['3600']\n")
    sidecar = start(config_dir, sidecars, f"max-body-size: {LIMIT}\n")
    document = sidecar.get("/openapi.json")[1]
    routes = [*documented_paths(document), ("GET", "/no/such/route")]
    assert len(routes) >= 12
    pid = sidecar.get("/supervisor/programs/web")[1]["pid"]
    body = b"x" * (LIMIT + 1)
    with ProbePoller(sidecar.probe_url) as probes:
        for method, path in routes:
            head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            sized = raw_exchange(sidecar.port, f"{head}Content-Length: {len(body)}\r\n\r\n"
                                 .encode() + body)
            assert status_of(sized) == 413, (method, path, sized[:200])
            chunked = raw_exchange(sidecar.port, f"{head}Transfer-Encoding: chunked\r\n\r\n"
                                   .encode() + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            assert status_of(chunked) == 413, (method, path, "chunked", chunked[:200])
            assert b"max-body-size (1024 bytes)" in sized
    probes.assert_always_answered(minimum=2)
    # None of them ran: the program was not restarted, no level changed.
    assert sidecar.get("/supervisor/programs/web")[1]["pid"] == pid
    assert {"logger": "sidecar", "level": "debug"} not in sidecar.get("/log/list")[1]


def _strict(text: str) -> Any:
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("ttl", ["nan", "NaN", "inf", "-inf", "1e309", "1e308",
                                 "999999999999h", "168h0m1s", "0", "-1s"])
def test_a_ttl_is_finite_and_at_most_a_week(config_dir: Path, sidecars: list[SidecarProcess],
                                            ttl: str) -> None:
    sidecar = start(config_dir, sidecars)
    with ProbePoller(sidecar.probe_url) as probes:
        status, body = request("PUT", f"{sidecar.url}/log/sidecar/debug?ttl={ttl}")
        assert status == 400, body
        assert body["error"].startswith("ttl: ")
        status, body = request("PUT", f"{sidecar.url}/log/sidecar/debug?ttl=168h")
        assert status == 200 and body["expires"] <= time.time() + 168 * 3600 + 5
        with urllib.request.urlopen(sidecar.url + "/log/list", timeout=5) as reply:
            listing = _strict(reply.read().decode())  # valid for a strict parser
    probes.assert_always_answered(minimum=2)
    assert {"logger": "sidecar", "level": "debug", "expires": body["expires"]} in listing


def test_a_supervisor_conf_that_is_not_utf8_is_a_rejection(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    good = ("watch-interval: 100ms\nprograms:\n  - name: web\n"
            "    executable-path: /bin/sleep\n    executable-args: ['3600']\n")
    conf = config_dir / "supervisor.conf"
    conf.write_text(good)
    sidecar = start(config_dir, sidecars)
    pid = sidecar.get("/supervisor/programs/web")[1]["pid"]
    with ProbePoller(sidecar.probe_url) as probes:
        conf.write_bytes(good.replace("web", "w\xe9b").encode("latin-1"))  # \xe9 alone

        def rejected() -> dict[str, Any] | None:
            config: dict[str, Any] = sidecar.get("/supervisor")[1]["config"]
            return config if config["rejected"] else None

        config = wait_until(rejected, 10, "the rejection counted")
        assert config["rejected"] == 1
        assert f"{conf}: not UTF-8 text (byte 0xe9 at offset" in config["last_error"]["error"]
        line = next(line for line in sidecar.log_lines() if "rejected" in line)
        assert "not UTF-8" in line and str(conf) in line
        metrics = sidecar.get("/metrics?name[]=cninfra_supervisor_reloads_total")[1]
        assert 'cninfra_supervisor_reloads_total{result="rejected"} 1.0' in metrics
        # Nothing changed; a good file is applied again as usual.
        assert sidecar.get("/supervisor/programs/web")[1]["pid"] == pid
        conf.write_text(good.replace("3600", "3601"))
        wait_until(lambda: sidecar.get("/supervisor/programs/web")[1]["pid"] != pid, 10,
                   "the good file applied")
    probes.assert_always_answered(minimum=2)
    assert sum("rejected" in line for line in sidecar.log_lines()) == 1


@pytest.mark.parametrize("missing", ["server-cert-file", "server-key-file"])
def test_a_missing_tls_file_is_a_config_error_naming_key_and_path(
        config_dir: Path, tmp_path: Path, missing: str) -> None:
    pki = make_pki(tmp_path / "pki")
    files = {"server-cert-file": str(pki.server_cert), "server-key-file": str(pki.server_key)}
    files[missing] = str(tmp_path / "nowhere" / "tls.pem")
    (config_dir / "http.conf").write_text("".join(f"{k}: {v}\n" for k, v in files.items()))
    done = run_sidecar(config_dir, "--http-port", str(free_port()))
    assert done.returncode == 2, done.stderr
    assert f"{missing} {tmp_path}/nowhere/tls.pem: No such file or directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_server_header_names_no_versions(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    sidecar = start(config_dir, sidecars)
    with ProbePoller(sidecar.probe_url) as probes:
        for raw in (b"GET /readiness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n"):
            head = raw_exchange(sidecar.port, raw).partition(b"\r\n\r\n")[0].decode("latin-1")
            assert "\r\nServer: cninfra-sidecar" in head, head
            assert "Python" not in head and "aiohttp" not in head
        probe = raw_exchange(sidecar.probe_port or 0,
                             b"GET /readiness HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert b"\r\nServer:" not in probe.partition(b"\r\n\r\n")[0]
    probes.assert_always_answered(minimum=2)


# -- grandchildren ------------------------------------------------------------------------

#: A program that leaves a grandchild in its process group and one in a session of its own
#: (a daemon), each findable by its unique argument.
def _family(tag: int) -> str:
    return (f"programs:\n  - name: family\n    executable-path: /bin/sh\n"
            f"    executable-args: ['-c', 'sleep {tag} & setsid sleep {tag + 1} & wait']\n")


def _pids_of(argument: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 2 and argv[0].endswith(b"sleep") and argv[1] == str(argument).encode():
            found.append(int(entry.name))
    return found


def _tag() -> int:
    """Sleep lengths no other test (or worktree) on the machine uses at the same time."""
    return random.randrange(40_000, 90_000, 4)


def test_in_its_own_pid_namespace_nothing_outlives_a_sigkilled_sidecar(
        config_dir: Path) -> None:
    """The chart's process model: the sidecar is PID 1 of its container's PID namespace
    (no shareProcessNamespace), so when it dies, even by SIGKILL, the kernel ends every
    process of the container, its programs' grandchildren and daemons included."""
    tag = _tag()
    (config_dir / "supervisor.conf").write_text(_family(tag))
    port, probe_port = free_port(), free_port()
    log_path = config_dir.parent / "sidecar.log"
    with open(log_path, "wb") as log:
        unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL",
             sys.executable, "-m", "sidecar", "run", "--config-dir", str(config_dir),
             "--http-port", str(port), "--probe-port", str(probe_port)],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[2])
    try:
        probe_url = f"http://127.0.0.1:{probe_port}"
        wait_until(lambda: request("GET", probe_url + "/readiness")[0] == 200, 20,
                   "the sidecar as PID 1 ready")
        with ProbePoller(probe_url) as probes:
            family = wait_until(lambda: len(_pids_of(tag) + _pids_of(tag + 1)) == 2 and
                                _pids_of(tag) + _pids_of(tag + 1), 10, "both grandchildren")
            sidecar = next(pid for pid in _children(unshare.pid))
        probes.assert_always_answered(minimum=2)
        os.kill(sidecar, signal.SIGKILL)
        wait_until(lambda: not any(_exists(pid) for pid in family), 10,
                   "the grandchildren gone with PID 1")
    finally:
        if unshare.poll() is None:
            unshare.kill()
        unshare.wait(10)


def test_a_subreaper_takes_its_programs_daemons_down_on_a_graceful_stop(
        config_dir: Path, sidecars: list[SidecarProcess]) -> None:
    """Outside a PID namespace a daemon that a program double-forks leaves the program's
    process group; with ``subreaper: true`` the sidecar adopts it (and reaps it), and ends
    it when it stops. (A SIGKILL of the sidecar leaves it running there: see the README.)"""
    tag = _tag()
    (config_dir / "supervisor.conf").write_text(_family(tag))
    (config_dir / "process-manager.conf").write_text("subreaper: true\n")
    sidecar = start(config_dir, sidecars)
    with ProbePoller(sidecar.probe_url) as probes:
        daemon = wait_until(lambda: _pids_of(tag + 1), 10, "the daemon")[0]
        group = wait_until(lambda: _pids_of(tag), 10, "the grandchild in the group")[0]
        assert os.getsid(daemon) != os.getsid(group)  # it left the program's session
    probes.assert_always_answered(minimum=2)
    assert sidecar.stop() == 0
    assert not _exists(group)
    assert not _exists(daemon), "the adopted daemon outlived the sidecar's stop"
    assert "stopping 1 orphaned process(es) the sidecar adopted" in sidecar.output()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _exists(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"

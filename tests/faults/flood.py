"""A hostile client in the pod network, as a process of its own (so that its load never
shares a GIL with the test's probe poller). Prints what it did as one JSON line.

    python -m tests.faults.flood http --port P --path /metrics --connections 256 --seconds 10
    python -m tests.faults.flood http --port P --method PUT --path /log/x/debug \\
        --header 'Authorization: Bearer wrong' --connections 32 --seconds 5
    python -m tests.faults.flood silent --port P --connections 1100 --seconds 10

``http``: keep-alive connections sending the same request as fast as answers come
(reconnecting when the server closes one); ``silent``: connections that never send
a byte, opened again whenever the server closes one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import time
from collections import Counter


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    if headers.get("connection", "").lower() == "close":
        raise ConnectionResetError("closed by the server")
    return status


async def http_flood(args: argparse.Namespace) -> dict[str, object]:
    request = (f"{args.method} {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
               .encode())
    for header in args.header:
        request += header.encode("utf-8", "surrogateescape") + b"\r\n"
    if args.header_hex:
        request += bytes.fromhex(args.header_hex) + b"\r\n"
    request += b"Content-Length: 0\r\n\r\n" if args.method in ("PUT", "POST") else b"\r\n"
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + args.seconds

    async def one() -> None:
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
            except OSError as exc:
                errors[type(exc).__name__] += 1
                await asyncio.sleep(0.05)
                continue
            try:
                while time.monotonic() < deadline:
                    writer.write(request)
                    statuses[await _read_answer(reader)] += 1
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                errors[type(exc).__name__] += 1
            finally:
                writer.close()

    await asyncio.gather(*(one() for _ in range(args.connections)))
    return {"requests": sum(statuses.values()), "statuses": dict(statuses),
            "errors": dict(errors)}


async def silent_flood(args: argparse.Namespace) -> dict[str, object]:
    deadline = time.monotonic() + args.seconds
    opened = 0
    closed_by_server = 0
    failed: Counter[str] = Counter()

    async def one() -> None:
        nonlocal opened, closed_by_server
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
            except OSError as exc:
                failed[type(exc).__name__] += 1
                await asyncio.sleep(0.05)
                continue
            opened += 1
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                    await reader.read(1)  # b"" when the server closes it
                closed_by_server += 1
            except TimeoutError:
                pass
            except OSError:
                closed_by_server += 1
            finally:
                writer.close()

    await asyncio.gather(*(one() for _ in range(args.connections)))
    return {"opened": opened, "closed_by_server": closed_by_server, "failed": dict(failed)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["http", "silent"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--path", default="/metrics")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--header-hex", help="one raw header line, hex (bytes that are not "
                                             "UTF-8)")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socket.setdefaulttimeout(None)
    run = http_flood if args.mode == "http" else silent_flood
    result = asyncio.run(run(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

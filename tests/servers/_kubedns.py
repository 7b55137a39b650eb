"""The test cluster's DNS: the Service names of ``cluster.local``, as a cluster's DNS add-on
answers them (CoreDNS's ``kubernetes`` plugin on a real cluster).

    python -m tests.servers._kubedns --listen 10.213.0.1 --api https://10.213.0.1:6443 \\
        --ca ca.crt --token-file token

The kubelet points every pod at it (``clusterDNS``), with the search path
``<namespace>.svc.cluster.local svc.cluster.local cluster.local``. It answers A queries
for ``<service>.<namespace>.svc.cluster.local`` with the Service's ClusterIP, read from the
API server at each query (no cache: a Service made a moment ago resolves at once), and
for a headless Service with the addresses of its ready endpoints. Everything else is
NXDOMAIN (there is no world outside the cluster's namespace to forward to), and a name
that exists answers other types with no records, as DNS says. UDP only: no answer here
is anywhere near 512 bytes.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import struct
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Resource record types and classes, and response codes, from RFC 1035.
TYPE_A = 1
CLASS_IN = 1
NOERROR, FORMERR, NXDOMAIN, NOTIMP = 0, 1, 3, 4
#: Seconds a resolver may keep an answer (CoreDNS's kubernetes plugin: 5).
TTL = 5


@dataclass(frozen=True)
class Question:
    name: str  # lower case, without the trailing dot
    qtype: int
    qclass: int
    raw: bytes  # as it came, for the answer's question section


def parse_query(packet: bytes) -> tuple[int, int, Question]:
    """(id, flags, the one question) of a query; ValueError for anything else."""
    if len(packet) < 12:
        raise ValueError("shorter than a DNS header")
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        raise ValueError("not a query with one question")
    labels, at = [], 12
    while True:
        if at >= len(packet):
            raise ValueError("the name runs past the packet")
        length = packet[at]
        if length & 0xC0:  # a query's name is never compressed
            raise ValueError("compressed name in a query")
        at += 1
        if length == 0:
            break
        labels.append(packet[at:at + length].decode("ascii", "replace").lower())
        at += length
    if at + 4 > len(packet):
        raise ValueError("no type and class after the name")
    qtype, qclass = struct.unpack("!HH", packet[at:at + 4])
    return ident, flags, Question(".".join(labels), qtype, qclass, packet[12:at + 4])


def response(ident: int, query_flags: int, question: Question | None, rcode: int,
             addresses: Sequence[str] = ()) -> bytes:
    """An authoritative answer: the question again, and an A record per address."""
    # QR, the query's opcode and RD, AA (the cluster's zone is ours), no recursion.
    flags = 0x8000 | (query_flags & 0x7900) | 0x0400 | rcode
    header = struct.pack("!HHHHHH", ident, flags, 1 if question else 0, len(addresses), 0, 0)
    body = question.raw if question else b""
    for address in addresses:
        # The name: a pointer to the question's (offset 12).
        body += struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4)
        body += socket.inet_aton(address)
    return header + body


class Services:
    """The Services of the API server, read at each lookup."""

    def __init__(self, api: str, ca: str, token: str) -> None:
        self.api = api.rstrip("/")
        self.context = ssl.create_default_context(cafile=ca)
        self.token = token

    def _get(self, path: str) -> dict[str, Any] | None:
        request = urllib.request.Request(self.api + path)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(request, context=self.context, timeout=5) as reply:
                return dict(json.loads(reply.read()))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def addresses(self, namespace: str, service: str) -> list[str] | None:
        """The Service's IPv4 addresses; None when there is no such Service."""
        found = self._get(f"/api/v1/namespaces/{namespace}/services/{service}")
        if found is None:
            return None
        spec = found.get("spec") or {}
        ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]
               if ip and ip != "None" and ":" not in ip]
        if spec.get("clusterIP") != "None":
            return ips
        # Headless: the ready endpoints' own addresses.
        query = urllib.parse.urlencode({"labelSelector": f"kubernetes.io/service-name={service}"})
        slices = self._get(f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
                           f"?{query}") or {}
        return sorted({address for s in slices.get("items") or () if s.get("addressType") == "IPv4"
                       for e in s.get("endpoints") or ()
                       if (e.get("conditions") or {}).get("ready", True)
                       for address in e.get("addresses") or ()})


def answer(packet: bytes, services: Services, domain: str) -> bytes | None:
    """The response to one packet; None for one that does not even have a header."""
    try:
        ident, flags, question = parse_query(packet)
    except ValueError:
        if len(packet) < 12:
            return None
        return response(struct.unpack("!H", packet[:2])[0], 0, None, FORMERR)
    if (flags >> 11) & 0xF:  # opcode: only standard queries
        return response(ident, flags, question, NOTIMP)
    suffix = f".svc.{domain}"
    if question.qclass != CLASS_IN or not question.name.endswith(suffix):
        return response(ident, flags, question, NXDOMAIN)
    parts = question.name.removesuffix(suffix).split(".")
    if len(parts) != 2:  # <service>.<namespace>; pod and port (SRV) names are not served
        return response(ident, flags, question, NXDOMAIN)
    try:
        addresses = services.addresses(parts[1], parts[0])
    except (OSError, ValueError) as exc:
        print(f"kubedns: {question.name}: {exc}", file=sys.stderr, flush=True)
        return response(ident, flags, question, 2)  # SERVFAIL: the resolver tries again
    if addresses is None:
        return response(ident, flags, question, NXDOMAIN)
    return response(ident, flags, question, NOERROR,
                    addresses if question.qtype == TYPE_A else [])


def serve(listen: str, port: int, services: Services, domain: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((listen, port))
        print(f"kubedns: serving {domain} on {listen}:{port}/udp", flush=True)
        while True:
            packet, peer = sock.recvfrom(512)
            reply = answer(packet, services, domain)
            if reply is not None:
                sock.sendto(reply, peer)


def resolve(server: str, name: str, port: int = 53, timeout: float = 2.0) -> list[str] | str:
    """The A records of ``name`` at the DNS ``server`` (one UDP query), or the error: a
    client of this server, for waiting until it answers."""
    query = struct.pack("!HHHHHH", 0x1D5, 0x0100, 1, 0, 0, 0) + b"".join(
        bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0\0\1\0\1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(query, (server, port))
            reply = sock.recv(512)
        except OSError as exc:
            return str(exc)
    rcode, answers = reply[3] & 0xF, struct.unpack("!H", reply[6:8])[0]
    if rcode:
        return f"rcode {rcode}"
    # Each answer: a name pointer, type, class, TTL, length 4, the address.
    at = len(query)
    found = []
    for _ in range(answers):
        found.append(socket.inet_ntoa(reply[at + 12:at + 16]))
        at += 16
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.servers._kubedns",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", required=True, help="the address to serve on")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--api", required=True, help="the API server's URL")
    parser.add_argument("--ca", required=True, help="the API server's CA certificate")
    parser.add_argument("--token-file", required=True, help="a bearer token that reads Services")
    parser.add_argument("--domain", default="cluster.local")
    args = parser.parse_args(argv)
    with open(args.token_file) as token:
        services = Services(args.api, args.ca, token.read().strip())
    serve(args.listen, args.port, services, args.domain.strip(".").lower())


if __name__ == "__main__":
    main()

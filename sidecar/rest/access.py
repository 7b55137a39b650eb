"""Who may call admin routes: peers in an allow-list of networks, or holders of the token."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from enum import Enum

from aiohttp import web

from .api import error_response

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Verdict(Enum):
    ALLOWED = "allowed"
    NEEDS_TOKEN = "needs-token"  # 401: no credentials and the peer is not trusted
    BAD_TOKEN = "bad-token"  # 403: credentials given, but wrong
    MALFORMED = "malformed"  # 400: an Authorization header that is not ASCII text


class AdminAccess:
    """Decides on the socket's peer address and the Authorization header only.

    Proxy headers such as X-Forwarded-For are ignored on purpose: a caller can
    write anything there.
    """

    def __init__(self, allow: Iterable[str], token: str | None = None) -> None:
        self.networks: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in allow
        )
        self._token = token.encode() if token else None

    def peer_allowed(self, peer: str | None) -> bool:
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks)

    def token_valid(self, authorization: str | None) -> bool:
        """Whether ``authorization`` is ``Bearer <the admin token>``."""
        if not authorization or not authorization.isascii() or self._token is None:
            return False
        scheme, _, credentials = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self._token)

    def check(self, peer: str | None, authorization: str | None) -> Verdict:
        if authorization and not authorization.isascii():
            # Bytes that are not ASCII (aiohttp hands them on as surrogates): no token has them.
            return Verdict.MALFORMED
        if authorization:
            if self.token_valid(authorization):
                return Verdict.ALLOWED
            if self._token is not None and _is_bearer(authorization):
                # A credential presented and wrong is refused even from the allow-list
                # (kube-apiserver does the same): a caller guessing tokens learns nothing.
                return Verdict.BAD_TOKEN
            return Verdict.ALLOWED if self.peer_allowed(peer) else Verdict.BAD_TOKEN
        return Verdict.ALLOWED if self.peer_allowed(peer) else Verdict.NEEDS_TOKEN

    def check_request(self, request: web.Request) -> Verdict:
        return self.check(peer_of(request), request.headers.get("Authorization"))


def _is_bearer(authorization: str) -> bool:
    return authorization.partition(" ")[0].lower() == "bearer"


def peer_of(request: web.Request) -> str | None:
    """The socket peer's address (never a header's claim); None without one."""
    if request.transport is not None:
        peername = request.transport.get_extra_info("peername")
        if isinstance(peername, tuple) and peername:
            return str(peername[0])
    return None


def refuse(verdict: Verdict) -> web.Response:
    if verdict is Verdict.MALFORMED:
        return error_response(
            400, "malformed Authorization header: expected 'Bearer <token>' in ASCII")
    if verdict is Verdict.NEEDS_TOKEN:
        return error_response(
            401, "admin route: allowed from the admin allow-list or with a bearer token",
            headers={"WWW-Authenticate": 'Bearer realm="cninfra-sidecar"'})
    return error_response(403, "admin route: invalid token")

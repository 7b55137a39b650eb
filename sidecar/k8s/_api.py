"""A small asyncio client for the few API calls the plugin makes itself.

kopf watches the ConfigMap; reading and patching the Pod and creating Events
go through here, so that none of kopf's bookkeeping ever lands on the Pod and
each call has its own deadline and error handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from sidecar.agent.errors import reason
from sidecar.buildinfo import current as current_build

from ._credentials import Credentials
from .errors import ApiError, ApiUnavailableError

log = logging.getLogger("sidecar.k8s")

JSON = "application/json"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"


class ApiClient:
    """JSON requests to one API server; ``requests`` counts them by verb and status."""

    def __init__(self, credentials: Credentials, timeout: float) -> None:
        self.credentials = credentials
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 3.0))
        self._ssl = credentials.ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        #: ``(verb, status)`` -> count; status 0 means no answer.
        self.requests: Counter[tuple[str, int]] = Counter()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the Kubernetes API client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=4),
                timeout=self._timeout,
                headers={"User-Agent": f"cninfra-sidecar/{current_build().version}",
                         "Accept": JSON, **self.credentials.headers},
            )
        return self._session

    async def request(self, method: str, path: str, body: Any = None, *,
                      content_type: str = JSON) -> dict[str, Any]:
        """Send one request; the decoded JSON answer, or ApiError / ApiUnavailableError."""
        try:
            return await self._request(method, path, body, content_type)
        except ApiError as exc:
            if exc.status != 401 or not callable(self.credentials.token):
                raise
            # A rotated token: the token callable reads the new one; try once more.
            return await self._request(method, path, body, content_type)

    async def _request(self, method: str, path: str, body: Any,
                       content_type: str) -> dict[str, Any]:
        session = self._get_session()
        headers = {}
        token = self.credentials.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        url = self.credentials.server + path
        try:
            async with session.request(method, url, data=data, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.requests[method, 0] += 1
            why = ("no answer within the request timeout" if isinstance(exc, TimeoutError)
                   else reason(exc))
            raise ApiUnavailableError(method, path, 0, why) from exc
        self.requests[method, status] += 1
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {"message": raw[:200].decode(errors="replace")}
        if status >= 400:
            message = answer.get("message") if isinstance(answer, dict) else None
            why = str(message or answer.get("reason") or "error")
            cls = ApiUnavailableError if status == 429 or status >= 500 else ApiError
            raise cls(method, path, status, why)
        return answer if isinstance(answer, dict) else {"items": answer}

    async def stream(self, path: str, *, read_timeout: float) -> AsyncIterator[dict[str, Any]]:
        """GET ``path`` (a ``watch=1`` request) and yield each JSON object of the answer as
        it arrives; ApiError for an error status, ApiUnavailableError when the connection
        fails or stays silent for ``read_timeout`` seconds (ask for bookmarks)."""
        session = self._get_session()
        headers = {}
        token = self.credentials.bearer_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._timeout.sock_connect,
                                        sock_read=read_timeout)
        try:
            async with session.get(self.credentials.server + path, headers=headers,
                                   timeout=timeout) as resp:
                self.requests["WATCH", resp.status] += 1
                if resp.status >= 400:
                    raw = await resp.read()
                    reason = raw[:200].decode(errors="replace")
                    with contextlib.suppress(ValueError, AttributeError):
                        reason = str(json.loads(raw).get("message") or reason)
                    cls = ApiUnavailableError if resp.status == 429 or resp.status >= 500 \
                        else ApiError
                    raise cls("WATCH", path, resp.status, reason)
                # Split by hand: aiohttp's line reader refuses lines over 128 KiB, and an
                # object (a Pod with a large annotation) can be longer.
                buffer = b""
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield json.loads(line)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            self.requests["WATCH", 0] += 1
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                reason = f"no event or bookmark within {read_timeout:g}s"
            raise ApiUnavailableError("WATCH", path, 0, reason) from exc

    async def close(self) -> None:
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
            # aiohttp closes TLS transports on the next loop iterations.
            await asyncio.sleep(0)


def pod_path(namespace: str, name: str, subresource: str = "") -> str:
    path = f"/api/v1/namespaces/{namespace}/pods/{name}"
    return f"{path}/{subresource}" if subresource else path

"""The webhook's TLS: one server SSLContext whose certificate is replaced in place.

The API server opens a new connection for (nearly) every admission call, and
each new handshake uses the certificate loaded last: a renewal never restarts
the listener, so no pod is ever admitted uninjected for want of a socket.

``files`` mode reads ``cert-file``/``key-file`` (and ``ca-file``, the bundle
the API server must trust) and re-reads them when they change: cert-manager's
Secret, mounted, is renewed this way.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

from .config import TlsConfig

log = logging.getLogger("sidecar.operator")


class ServingTls:
    """The serving certificate behind :attr:`context`, and the CA bundle clients need."""

    def __init__(self) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ca_bundle = b""
        self.loaded = asyncio.Event()
        #: Certificates loaded (the first one included).
        self.renewals = 0

    def load(self, cert_file: str, key_file: str, ca_bundle: bytes) -> None:
        self.context.load_cert_chain(cert_file, key_file)
        self.ca_bundle = ca_bundle
        self.renewals += 1
        self.loaded.set()


class TlsFiles:
    """``files`` mode: the files of ``config``, re-read every ``check-interval`` on change."""

    def __init__(self, config: TlsConfig, tls: ServingTls) -> None:
        self._config = config
        self._tls = tls
        self._stamp: tuple[tuple[int, int], ...] = ()

    def _paths(self) -> list[Path]:
        names = (self._config.cert_file, self._config.key_file, self._config.ca_file)
        return [Path(name) for name in names if name]

    def check(self) -> bool:
        """Load the files if they changed since the last load; True when loaded."""
        stamp = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in self._paths())
        if stamp == self._stamp:
            return False
        config = self._config
        ca = Path(config.ca_file).read_bytes() if config.ca_file else \
            Path(config.cert_file).read_bytes()
        self._tls.load(config.cert_file, config.key_file, ca)
        self._stamp = stamp
        return True

    async def run(self) -> None:
        """Re-read the files when they change (a task; the first load happens before)."""
        while True:
            await asyncio.sleep(self._config.check_interval)
            try:
                if await asyncio.to_thread(self.check):
                    log.info("webhook certificate reloaded from %s", self._config.cert_file)
            except (OSError, ssl.SSLError) as exc:
                # Mid-update (a kubelet swaps the files at once, but not atomically for us):
                # the certificate in use stays until the files read well again.
                log.warning("cannot reload the webhook certificate: %s", exc)

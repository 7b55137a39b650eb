"""The webhook's TLS: one server SSLContext whose certificate is replaced in place.

The API server opens a new connection for (nearly) every admission call, and
each new handshake uses the certificate loaded last: a renewal never restarts
the listener, so no pod is ever admitted uninjected for want of a socket.

``self-signed`` mode (:class:`SelfSignedTls`) makes and renews a CA and a
serving certificate in a Secret and keeps the webhook configuration's
``caBundle`` current. ``files`` mode reads ``cert-file``/``key-file`` (and ``ca-file``, the bundle
the API server must trust) and re-reads them when they change: cert-manager's
Secret, mounted, is renewed this way.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import shutil
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sidecar.k8s import ApiClient, ApiError

from . import certs
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


@dataclass(frozen=True)
class Material:
    """What the TLS Secret holds: the CA bundle (newest first), the CA's key, the serving pair."""

    bundle: list[bytes]
    ca_key: bytes
    cert: bytes
    key: bytes

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any]) -> Material:
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        missing = [k for k in ("ca.crt", "ca.key", "tls.crt", "tls.key") if not data.get(k)]
        if missing:
            raise ValueError(f"the Secret has no {', '.join(missing)}")
        return cls(certs.split_bundle(data["ca.crt"]), data["ca.key"], data["tls.crt"],
                   data["tls.key"])

    def data(self) -> dict[str, str]:
        raw = {"ca.crt": b"".join(self.bundle), "ca.key": self.ca_key, "tls.crt": self.cert,
               "tls.key": self.key}
        return {k: base64.b64encode(v).decode() for k, v in raw.items()}

    @property
    def ca(self) -> certs.KeyPair:
        return certs.KeyPair(self.bundle[0], self.ca_key)


class SelfSignedTls:
    """``self-signed`` mode: a CA and a serving certificate in a Secret, renewed by whichever
    replica sees them due first (the Secret's resourceVersion lets only one write win),
    loaded by every replica, and the webhook configuration's ``caBundle`` kept current.

    A serving certificate is renewed at two thirds of its life, the CA likewise; a new CA
    joins the bundle first and signs serving certificates only once the webhook
    configuration trusts it, and an expired CA leaves the bundle: the API server always
    trusts the certificate it is shown.
    """

    def __init__(self, config: TlsConfig, tls: ServingTls, api: ApiClient, namespace: str,
                 webhook_configuration: str) -> None:
        self._config = config
        self._tls = tls
        self._api = api
        self._path = f"/api/v1/namespaces/{namespace}/secrets/{config.secret}"
        self._namespace = namespace
        self._webhook = webhook_configuration
        self._dir = Path(tempfile.mkdtemp(prefix="cninfra-operator-tls-"))
        self._loaded = b""
        #: The webhook configuration's caBundle is this replica's bundle (or none is kept).
        self.trusted = asyncio.Event()
        self.rotations = 0
        self.last_error: str | None = None

    async def run(self) -> None:
        """Reconcile every ``check-interval`` (a task); sooner until the webhook
        configuration trusts the certificate (the replica is unready until then): helm
        creates the configuration after the Deployment, so a replica that starts at once
        finds none, and one that loses the race for the Secret trusts it next round."""
        retry = _UNTRUSTED_RETRY
        while True:
            try:
                await self.reconcile()
                self.last_error = None
            except (ApiError, ValueError, TypeError, OSError, ssl.SSLError) as exc:
                if self.last_error != str(exc):
                    log.warning("webhook TLS: %s", exc)
                self.last_error = str(exc)
            interval = self._config.check_interval
            if self.trusted.is_set():
                await asyncio.sleep(interval)
            else:
                await asyncio.sleep(min(retry, interval))
                retry = min(retry * 2, interval)

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    async def reconcile(self) -> None:
        """One round: read the Secret, load what it holds, renew what is due, trust it."""
        secret = await self._read()
        now = datetime.now(UTC)
        if secret is None:
            material = self._fresh(now)
            if not await self._write(material, None):
                return
        else:
            material = Material.from_secret(secret)
            # What the Secret holds is good until it expires: serve it before anything
            # below (which needs the API server) can fail.
            if material.cert != self._loaded and certs.not_after(material.cert) > now:
                await asyncio.to_thread(self._load, material)
            renewed = await self._renewed(material, now)
            if renewed is not None:
                if not await self._write(renewed, secret["metadata"]["resourceVersion"]):
                    return
                material = renewed
        if material.cert != self._loaded:
            await asyncio.to_thread(self._load, material)
        await self._trust(material)

    def _fresh(self, now: datetime) -> Material:
        config = self._config
        ca = certs.new_ca(f"{config.secret}-ca", config.ca_validity, now)
        serving = certs.new_serving(ca, config.hosts, config.validity, now)
        return Material([ca.cert], ca.key, serving.cert, serving.key)

    async def _renewed(self, material: Material, now: datetime) -> Material | None:
        """The material with what is due renewed, or None when nothing is."""
        config = self._config
        bundle = [ca for ca in material.bundle if certs.not_after(ca) > now]
        ca = certs.KeyPair(bundle[0], material.ca_key) if bundle else None
        if ca is None or _due(ca.cert, config.ca_validity, now):
            ca = certs.new_ca(f"{config.secret}-ca", config.ca_validity, now)
            bundle = [ca.cert, *bundle]
        cert, key = material.cert, material.key
        stale = (_due(cert, config.validity, now)
                 or set(certs.hosts_of(cert)) != set(config.hosts)
                 or not any(certs.signed_by(cert, c) for c in bundle))
        if (stale or not certs.signed_by(cert, ca.cert)) and await self._is_trusted(ca.cert):
            serving = certs.new_serving(ca, config.hosts, config.validity, now)
            cert, key = serving.cert, serving.key
        renewed = Material(bundle, ca.key, cert, key)
        return None if renewed == material else renewed

    async def _read(self) -> dict[str, Any] | None:
        try:
            return await self._api.request("GET", self._path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def _write(self, material: Material, resource_version: str | None) -> bool:
        """Create or replace the Secret; False when another replica wrote it first."""
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": self._config.secret, "namespace": self._namespace,
                         "labels": {"app.kubernetes.io/managed-by": "cninfra-operator"}},
            "data": material.data()}
        try:
            if resource_version is None:
                await self._api.request("POST", self._path.rsplit("/", 1)[0], body)
            else:
                body["metadata"]["resourceVersion"] = resource_version
                await self._api.request("PUT", self._path, body)
        except ApiError as exc:
            if exc.status == 409:
                return False  # another replica renewed it: the next round reads theirs
            raise
        self.rotations += 1
        log.info("webhook TLS: %s the serving certificate (valid until %s)",
                 "made" if resource_version is None else "renewed",
                 certs.not_after(material.cert).isoformat())
        return True

    def _load(self, material: Material) -> None:
        cert, key = self._dir / "tls.crt", self._dir / "tls.key"
        key.touch(mode=0o600)
        key.write_bytes(material.key)
        cert.write_bytes(material.cert)
        self._tls.load(str(cert), str(key), b"".join(material.bundle))
        self._loaded = material.cert

    async def _is_trusted(self, ca_cert: bytes) -> bool:
        """Whether the webhook configuration's caBundle has ``ca_cert`` (True without one)."""
        if not self._webhook:
            return True
        config = await self._api.request(
            "GET", f"{_WEBHOOK_CONFIGURATIONS}/{self._webhook}")
        return all(ca_cert in certs.split_bundle(
            base64.b64decode(w.get("clientConfig", {}).get("caBundle") or ""))
            for w in config.get("webhooks") or ())

    async def _trust(self, material: Material) -> None:
        """Make the webhook configuration's caBundle the Secret's bundle."""
        if not self._webhook:
            self.trusted.set()
            return
        path = f"{_WEBHOOK_CONFIGURATIONS}/{self._webhook}"
        config = await self._api.request("GET", path)
        bundle = base64.b64encode(b"".join(material.bundle)).decode()
        ops: list[dict[str, Any]] = [
            {"op": "test", "path": "/metadata/resourceVersion",
             "value": config["metadata"]["resourceVersion"]}]
        for index, webhook in enumerate(config.get("webhooks") or ()):
            if webhook.get("clientConfig", {}).get("caBundle") != bundle:
                ops.append({"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle",
                            "value": bundle})
        if len(ops) > 1:
            await self._api.request("PATCH", path, ops, content_type=JSON_PATCH)
            log.info("webhook TLS: the caBundle of %s updated (%d CA(s))", self._webhook,
                     len(material.bundle))
        self.trusted.set()


_WEBHOOK_CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
#: The first wait before another round while untrusted; doubled up to check-interval.
_UNTRUSTED_RETRY = 0.5
JSON_PATCH = "application/json-patch+json"


def _due(cert: bytes, validity: float, now: datetime) -> bool:
    """Renew at two thirds of a certificate's life."""
    return (certs.not_after(cert) - now).total_seconds() < validity / 3

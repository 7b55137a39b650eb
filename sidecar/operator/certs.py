"""A CA and the serving certificates it signs, for the webhook (the ``cryptography`` package).

ECDSA P-256 keys: every supported kube-apiserver accepts them, and a key is
made in a millisecond, not in the second an RSA key takes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Backdated, so that a server whose clock is a little behind accepts a fresh certificate.
SKEW = timedelta(minutes=1)
#: The longest common name X.509 allows (RFC 5280's ub-common-name).
_COMMON_NAME_MAX = 64
_PEM_END = b"-----END CERTIFICATE-----"


@dataclass(frozen=True)
class KeyPair:
    cert: bytes
    key: bytes


def _key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return key, pem


def _common_name(name: str) -> x509.Name:
    """A subject of ``name``, or of its first label when it is longer than a common name
    may be (a service name in a long namespace: ``cninfra-operator.<63 characters>.svc``).
    Clients check the subjectAltName's names, never the common name."""
    if len(name) > _COMMON_NAME_MAX:
        name = name.split(".", 1)[0][:_COMMON_NAME_MAX]
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def new_ca(name: str, validity: float, now: datetime | None = None) -> KeyPair:
    """A self-signed CA certificate valid for ``validity`` seconds."""
    now = now or datetime.now(UTC)
    key, key_pem = _key()
    subject = _common_name(name)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - SKEW).not_valid_after(now + timedelta(seconds=validity))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def new_serving(ca: KeyPair, hosts: list[str], validity: float,
                now: datetime | None = None) -> KeyPair:
    """A serving certificate for ``hosts`` (DNS names or IP addresses), signed by ``ca``."""
    if not hosts:
        raise ValueError("a serving certificate needs at least one host name")
    now = now or datetime.now(UTC)
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError("the CA key is not an EC key")
    key, key_pem = _key()
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder()
            .subject_name(_common_name(hosts[0]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - SKEW).not_valid_after(now + timedelta(seconds=validity))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM), key_pem)


def split_bundle(pem: bytes) -> list[bytes]:
    """The certificates of a PEM bundle, in order."""
    return [part.strip() + b"\n" + _PEM_END + b"\n"
            for part in pem.split(_PEM_END) if part.strip()]


def not_after(cert_pem: bytes) -> datetime:
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def hosts_of(cert_pem: bytes) -> list[str]:
    """The DNS names and IP addresses a certificate is for."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(n) for n in names.get_values_for_type(x509.DNSName)] + \
        [str(n) for n in names.get_values_for_type(x509.IPAddress)]


def signed_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True

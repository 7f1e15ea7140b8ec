"""Certificates for the TLS tests, made fresh in each test run (never checked in).

:func:`make_pki` writes, under one directory: a CA, a server certificate for 127.0.0.1 and localhost,
a client certificate, an expired server certificate and a server and a client certificate signed by
a second, unrelated CA. Keys are EC P-256, so making the whole set takes milliseconds.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA the SUT and the harness trust
    other_ca: Path  # a second CA nobody trusts
    server: CertPair  # 127.0.0.1 + localhost, signed by ``ca``
    client: CertPair  # CN=lpuperf-harness, signed by ``ca``
    expired_server: CertPair  # like ``server`` but expired yesterday
    other_server: CertPair  # like ``server`` but signed by ``other_ca``
    other_client: CertPair  # like ``client`` but signed by ``other_ca``
    name_server: CertPair  # valid, signed by ``ca``, but only for the name sut.example


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lpuperf tests"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    cn: str,
    *,
    server: bool,
    names: tuple[str, ...] = ("127.0.0.1", "localhost"),
    expired: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = _key()
    now = dt.datetime.now(dt.UTC)
    start, end = (
        (now - dt.timedelta(days=10), now - dt.timedelta(days=1))
        if expired
        else (now - dt.timedelta(hours=1), now + dt.timedelta(days=30))
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if server:
        alt: list[x509.GeneralName] = []
        for n in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_pki(directory: Path) -> Pki:
    """Write the test CAs, certificates and keys under ``directory`` (created) and name them."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = _ca("lpuperf test CA")
    other = _ca("unrelated CA")

    def pair(name: str, made: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> CertPair:
        cert, key = made
        out = CertPair(directory / f"{name}.crt", directory / f"{name}.key")
        _write_cert(out.cert, cert)
        _write_key(out.key, key)
        return out

    _write_cert(directory / "ca.crt", ca[0])
    _write_cert(directory / "other-ca.crt", other[0])
    return Pki(
        ca=directory / "ca.crt",
        other_ca=directory / "other-ca.crt",
        server=pair("server", _leaf(ca, "lpuperf-sut", server=True)),
        client=pair("client", _leaf(ca, "lpuperf-harness", server=False)),
        expired_server=pair("expired-server", _leaf(ca, "lpuperf-sut", server=True, expired=True)),
        other_server=pair("other-server", _leaf(other, "lpuperf-sut", server=True)),
        other_client=pair("other-client", _leaf(other, "lpuperf-harness", server=False)),
        name_server=pair("name-server", _leaf(ca, "sut.example", server=True, names=("sut.example",))),
    )

"""Throwaway certificates for the TLS tests: a CA, a server certificate for the
loopback names, a client certificate, and a second CA that nobody trusts."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class PKI:
    ca: Path  # the CA certificate, trusted by both sides
    server: Pair
    client: Pair
    rogue_ca: Path  # a CA nobody trusts
    rogue_client: Pair  # a client certificate signed by the rogue CA


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool = False, server: bool = False,
                 client: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if client:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, stem: str, cert: x509.Certificate, key=None) -> Pair:
    cert_path = folder / f"{stem}.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = folder / f"{stem}.key"
    if key is not None:
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return Pair(cert_path, key_path)


def make_pki(folder: Path) -> PKI:
    def key():
        return ec.generate_private_key(ec.SECP256R1())

    ca_key, rogue_key = key(), key()
    ca = _write(folder, "ca", _certificate("genserve test CA", ca_key, "genserve test CA", ca_key, ca=True))
    rogue = _write(folder, "rogue-ca", _certificate("rogue CA", rogue_key, "rogue CA", rogue_key, ca=True))
    server_key, client_key, rogue_client_key = key(), key(), key()
    server = _write(folder, "server", _certificate("localhost", server_key, "genserve test CA", ca_key, server=True),
                    server_key)
    client = _write(folder, "client", _certificate("client", client_key, "genserve test CA", ca_key, client=True),
                    client_key)
    rogue_client = _write(folder, "rogue-client",
                          _certificate("rogue client", rogue_client_key, "rogue CA", rogue_key, client=True),
                          rogue_client_key)
    return PKI(ca.cert, server, client, rogue.cert, rogue_client)

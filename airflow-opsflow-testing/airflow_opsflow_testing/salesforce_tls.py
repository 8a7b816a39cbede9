"""The certificate FakeSalesforce serves: a throwaway CA and a 127.0.0.1/localhost certificate it signed.

simple-salesforce (and so Airflow's ``SalesforceHook``) builds every URL as ``https://{instance}``, so the fake
speaks TLS. Clients trust it through :attr:`LocalCertificate.bundle`: a CA bundle plus this CA, safe to put
in ``REQUESTS_CA_BUNDLE`` for a whole test (real hosts still verify; the bundle starts from the
``REQUESTS_CA_BUNDLE`` in force when it is built, else certifi's). Generated once per process with
``cryptography`` (an Airflow dependency): a CA and a leaf, as strict verifiers refuse a self-signed leaf.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LocalCertificate", "local_certificate"]


@dataclass(frozen=True)
class LocalCertificate:
    ca: Path  # the CA certificate alone (PEM)
    cert: Path  # the server certificate, then the CA (the chain the server sends)
    key: Path  # the server key
    bundle: Path  # the usual CA bundle + the CA: a REQUESTS_CA_BUNDLE that still trusts real hosts

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


@functools.cache
def local_certificate() -> LocalCertificate:
    """The process-wide certificate files (in a temporary folder), generated on first use."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opsflow FakeSalesforce test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(ca_ski, critical=False)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder = Path(tempfile.mkdtemp(prefix="opsflow-fake-salesforce-tls-"))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    paths = LocalCertificate(folder / "ca.pem", folder / "cert.pem", folder / "key.pem", folder / "bundle.pem")
    paths.ca.write_bytes(ca_pem)
    paths.cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca_pem)
    paths.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    system = b""
    trusted = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not trusted:
        with contextlib.suppress(ImportError):  # requests depends on certifi
            import certifi

            trusted = certifi.where()
    if trusted and Path(trusted).is_file():
        system = Path(trusted).read_bytes()
    paths.bundle.write_bytes(system + b"\n" + ca_pem)
    return paths

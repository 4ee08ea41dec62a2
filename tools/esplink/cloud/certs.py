"""The cloud's own CA and server certificate, made on first run and reused after.

Boards are given ca.der (or ca.pem) to verify the cloud; the CA key stays here so the
server certificate can be reissued for new names without changing what boards trust.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The board's clock is unset (it believes it is 2000-01-01) until it learns the time,
# and mbedTLS/axTLS may check validity against it: start the certificates then.
NOT_BEFORE = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
YEARS = 20

# TLS policy: forward secrecy (ECDHE) everywhere, except for the one client that cannot
# have it: the ESP8266, whose axTLS has neither ECDHE nor DHE and only does RSA key
# transport (lib/axtls/ssl/tls1.c:65-67). It connects without SNI (it cannot verify a
# certificate, so it names no host); the device port offers the static-RSA suites only
# to a ClientHello without SNI. See device_context.
ECDHE = "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES"
STATIC_RSA = "AES128-SHA256:AES256-SHA256:AES128-SHA:AES256-SHA"

DEFAULT_NAMES = ("localhost", "127.0.0.1")


class Paths:
    def __init__(self, data_dir):
        d = Path(data_dir)
        self.ca_pem, self.ca_der, self.ca_key = d / "ca.pem", d / "ca.der", d / "ca.key"
        self.server_pem, self.server_key = d / "server.pem", d / "server.key"
        # the same names on an EC key, for ECDHE-ECDSA (see device_context)
        self.server_ec_pem, self.server_ec_key = d / "server-ec.pem", d / "server-ec.key"


def server_names(extra=()) -> list[str]:
    names = list(DEFAULT_NAMES) + [socket.gethostname()] + list(extra)
    return list(dict.fromkeys(n for n in names if n))


def ensure(data_dir, names=(), not_before=NOT_BEFORE) -> Paths:
    """Make whatever is missing. The server certificate is reissued (same CA) when it
    lacks one of `names`; a CA is never replaced, boards hold it. New certificates
    are valid from `not_before` (a real CA's would be recent: tests use that)."""
    paths = Paths(data_dir)
    Path(data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
    wanted = server_names(names)
    if paths.ca_pem.exists() and paths.ca_key.exists():
        ca_cert = x509.load_pem_x509_certificate(paths.ca_pem.read_bytes())
        ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), None)
    else:
        ca_cert, ca_key = _make_ca(not_before)
        _write_key(paths.ca_key, ca_key)
        paths.ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        for pem in (paths.server_pem, paths.server_ec_pem):
            pem.unlink(missing_ok=True)  # signed by a CA that no longer exists
    if not paths.ca_der.exists():
        paths.ca_der.write_bytes(ca_cert.public_bytes(serialization.Encoding.DER))
    for pem, key_file, new_key in ((paths.server_pem, paths.server_key, _new_key),
                                   (paths.server_ec_pem, paths.server_ec_key, _new_ec_key)):
        if not (pem.exists() and key_file.exists() and set(wanted) <= set(cert_names(pem))):
            cert, key = _make_server(ca_cert, ca_key, wanted, not_before, new_key())
            _write_key(key_file, key)
            pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return paths


def cert_names(pem_path) -> list[str]:
    cert = x509.load_pem_x509_certificate(Path(pem_path).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName) + [
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


def server_context(paths: Paths) -> ssl.SSLContext:
    """The REST API's and the console's: TLS 1.2 with ECDHE only, or TLS 1.3."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ECDHE)  # TLS 1.3 suites are not affected by this list
    ctx.load_cert_chain(paths.server_pem, paths.server_key)
    return ctx


def device_context(paths: Paths) -> ssl.SSLContext:
    """The device port's: TLS 1.2 at most, what both chips speak (axTLS has only 1.2;
    MicroPython's ESP32 build of mbedTLS has no 1.3).

    A ClientHello with SNI (the ESP32, which verifies the cloud by name; any modern
    client) is switched to a context holding only the EC certificate, so only
    ECDHE-ECDSA can be chosen: OpenSSL keeps the first context's cipher list but
    picks a suite the certificate can serve, and static RSA needs an RSA key.
    (ECDSA also because with an RSA key OpenSSL signs ECDHE with RSA-PSS, which
    mbedTLS 3.6's TLS 1.2 client offers and then rejects with illegal_parameter.)
    A ClientHello without SNI (the ESP8266) stays on the RSA certificate, with ECDHE
    preferred and the static-RSA suites after it."""
    legacy = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    legacy.minimum_version = legacy.maximum_version = ssl.TLSVersion.TLSv1_2
    legacy.set_ciphers(f"{ECDHE}:{STATIC_RSA}")
    legacy.load_cert_chain(paths.server_pem, paths.server_key)
    named = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    named.minimum_version = named.maximum_version = ssl.TLSVersion.TLSv1_2
    named.set_ciphers(ECDHE)
    named.load_cert_chain(paths.server_ec_pem, paths.server_ec_key)

    def by_sni(conn, server_name, _ctx):
        if server_name is not None:
            conn.context = named

    legacy.sni_callback = by_sni
    return legacy


def client_context(ca_file) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _write_key(path: Path, key) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    # created 0600 from the start: never world-readable, not even for a moment
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, 0o600)


def _new_key():
    # RSA, not EC: the ESP8266's axTLS only does RSA
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _builder(subject, issuer, public_key, not_before):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public_key).serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(now + datetime.timedelta(days=round(365.25 * YEARS))))


def _make_ca(not_before):
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "esplink"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "esplink local cloud CA")])
    cert = (_builder(name, name, key.public_key(), not_before)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _new_ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def _make_server(ca_cert, ca_key, names, not_before, key):
    alt = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "esplink"),
                         x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (_builder(subject, ca_cert.subject, key.public_key(), not_before)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # key_encipherment: static-RSA suites encrypt the premaster secret to an RSA key
            .add_extension(x509.KeyUsage(True, False, isinstance(key, rsa.RSAPrivateKey),
                                         False, False, False, False, False, False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key

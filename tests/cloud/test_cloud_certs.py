import datetime
import socket
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from esplink.cloud import certs


def load(path):
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_first_run_makes_a_ca_and_a_server_cert(tmp_path):
    paths = certs.ensure(tmp_path / "d", names=["cloud.example", "10.1.2.3"])
    ca, server = load(paths.ca_pem), load(paths.server_pem)

    assert x509.load_der_x509_certificate(paths.ca_der.read_bytes()) == ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert server.issuer == ca.subject
    for cert in (ca, server):
        key = cert.public_key()
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
        assert cert.not_valid_before_utc == datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
        years = (cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).days / 365.25
        assert 19.9 < years < 20.1
    names = certs.cert_names(paths.server_pem)
    for name in ("localhost", "127.0.0.1", socket.gethostname(), "cloud.example", "10.1.2.3"):
        assert name in names
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "127.0.0.1" not in san.get_values_for_type(x509.DNSName)  # an IP entry, not a DNS one
    for key_file in (paths.server_key, paths.ca_key):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_later_runs_reuse_the_files(tmp_path):
    first = certs.ensure(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    certs.ensure(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert first.ca_der.exists()


def test_a_new_name_reissues_the_server_cert_under_the_same_ca(tmp_path):
    paths = certs.ensure(tmp_path)
    ca, server = paths.ca_pem.read_bytes(), paths.server_pem.read_bytes()
    certs.ensure(tmp_path, names=["plug.lan"])
    assert paths.ca_pem.read_bytes() == ca
    assert paths.server_pem.read_bytes() != server
    assert "plug.lan" in certs.cert_names(paths.server_pem)


@pytest.mark.parametrize("hostname", ["127.0.0.1", "localhost"])
def test_clients_verify_the_cloud_with_the_ca(cloud, hostname):
    ctx = ssl.create_default_context(cafile=str(cloud.ca_file))
    with socket.create_connection(("127.0.0.1", cloud.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=hostname) as s:
            assert s.version() == "TLSv1.2"  # the device port: what both chips speak


def test_a_wrong_name_or_another_ca_is_refused(cloud, tmp_path):
    ctx = ssl.create_default_context(cafile=str(cloud.ca_file))
    with socket.create_connection(("127.0.0.1", cloud.tls_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="not-the-cloud.example")
    other = certs.ensure(tmp_path / "other")
    ctx = ssl.create_default_context(cafile=str(other.ca_pem))
    with socket.create_connection(("127.0.0.1", cloud.tls_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="localhost")


STATIC_RSA = ["AES128-SHA256", "AES256-SHA256", "AES128-SHA", "AES256-SHA"]


def handshake(port, ciphers, sni, ca_file=None, maximum=ssl.TLSVersion.TLSv1_2):
    """The cipher a client offering only `ciphers` ends with, or the SSLError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # as axTLS: it cannot verify
    ctx.maximum_version = maximum
    ctx.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname=sni) as s:
                return s.version(), s.cipher()[0]
        except ssl.SSLError as e:
            return e


@pytest.mark.parametrize("cipher", STATIC_RSA)
def test_static_rsa_only_for_a_client_without_sni_as_axtls_connects(cloud, cipher):
    assert handshake(cloud.tls_port, cipher, None) == ("TLSv1.2", cipher)
    # a client naming the host (the ESP32, anything that verifies) gets forward secrecy or nothing
    assert isinstance(handshake(cloud.tls_port, cipher, "localhost"), ssl.SSLError)


def test_ecdhe_is_chosen_whenever_offered(cloud):
    ctx = ssl.create_default_context(cafile=str(cloud.ca_file))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", cloud.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.cipher()[0].startswith("ECDHE-ECDSA-")  # the EC certificate, for mbedTLS
    # without SNI too, when the client can: static RSA is only the last resort
    version, cipher = handshake(cloud.tls_port, "ALL", None)
    assert cipher.startswith("ECDHE-RSA-")


def test_the_rest_api_offers_forward_secrecy_only(cloud):
    for sni in (None, "localhost"):
        assert isinstance(handshake(cloud.api_port, ":".join(STATIC_RSA), sni), ssl.SSLError)
    assert handshake(cloud.api_port, "ECDHE+AESGCM", "localhost")[1].startswith("ECDHE-RSA-AES")
    assert handshake(cloud.api_port, "ALL", "localhost", maximum=ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"


def test_server_context_wants_tls12_or_later(cert_template):
    ctx = certs.server_context(certs.Paths(cert_template))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    names = [c["name"] for c in ctx.get_ciphers()]
    tls12 = [n for n in names if not n.startswith("TLS_")]  # the TLS 1.3 suites come first
    assert tls12 and all(n.startswith("ECDHE-") for n in tls12)

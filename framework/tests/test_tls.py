"""TLS to NATS on loopback: a throwaway CA, a server certificate and a client certificate."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from framework_helpers import EchoReply, EchoRequest, echo_interface, unique

from agentbus.framework import Bus, Settings
from agentbus.framework.config import ENV_PREFIX
from agentbus.framework.embedded import EmbeddedNats, ServerTls
from agentbus.framework.errors import ConfigError, NotConnectedError
from agentbus.framework.testing import MockService
from agentbus.interfaces.metadata import Source

SOURCE = Source("tls-test", "pytest")
SERVER_NAME = "nats.test"  # in the server certificate, with 127.0.0.1 (but not localhost)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # signed nothing here: a client that trusts only it must refuse the server


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _write_cert(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    *,
    server: bool = False,
) -> x509.Certificate:
    """A CA certificate (self-signed, ``issuer`` None) or a leaf signed by ``issuer``."""
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca_key, other_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _certificate("agentbus test CA", ca_key)
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    return Pki(
        ca=_write_cert(root / "ca.pem", ca),
        server_cert=_write_cert(
            root / "server.pem",
            _certificate("nats", server_key, (ca.subject, ca_key), server=True),
        ),
        server_key=_write_key(root / "server-key.pem", server_key),
        client_cert=_write_cert(
            root / "client.pem", _certificate("a service", client_key, (ca.subject, ca_key))
        ),
        client_key=_write_key(root / "client-key.pem", client_key),
        other_ca=_write_cert(root / "other-ca.pem", _certificate("another CA", other_key)),
    )


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A nats-server that speaks TLS only and does not ask clients for certificates."""
    tls = ServerTls(pki.server_cert, pki.server_key)
    with EmbeddedNats(tmp_path_factory.mktemp("nats-tls"), tls=tls) as server:
        yield server


@pytest.fixture(scope="module")
def verifying_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A nats-server that accepts only clients with a certificate signed by the test CA."""
    tls = ServerTls(pki.server_cert, pki.server_key, ca=pki.ca, verify=True)
    with EmbeddedNats(tmp_path_factory.mktemp("nats-mtls"), tls=tls) as server:
        yield server


async def _echo_over(settings: Settings) -> EchoReply:
    """A request/reply through a service, both connected with ``settings``."""
    echo = echo_interface()
    answer = EchoReply(text="over tls", instance="mock", correlation_id="-")
    async with (
        MockService({echo: answer}, settings, name=unique("tls-mock")),
        Bus(settings, SOURCE) as bus,
    ):
        return await bus.request(echo, EchoRequest(text="hello"))


# -- a server that speaks TLS ------------------------------------------------------------------


async def test_a_bus_that_trusts_the_ca_connects_and_requests_work(
    tls_server: EmbeddedNats, pki: Pki, tmp_path: Path
) -> None:
    assert tls_server.url.startswith("tls://")
    settings = Settings(nats_url=tls_server.url, nats_tls_ca=pki.ca, data_dir=tmp_path)

    reply = await _echo_over(settings)

    assert reply.text == "over tls"


async def test_the_ca_alone_turns_tls_on_for_a_nats_url(
    tls_server: EmbeddedNats, pki: Pki, tmp_path: Path
) -> None:
    url = f"nats://127.0.0.1:{tls_server.port}"
    settings = Settings(nats_url=url, nats_tls_ca=pki.ca, data_dir=tmp_path)

    async with Bus(settings, SOURCE) as bus:
        assert bus.nc.is_connected


@pytest.mark.parametrize("trust", ["system CAs", "another CA"])
async def test_a_bus_that_does_not_trust_the_server_is_refused_with_what_to_check(
    tls_server: EmbeddedNats, pki: Pki, tmp_path: Path, trust: str
) -> None:
    ca = pki.other_ca if trust == "another CA" else None
    settings = Settings(nats_url=tls_server.url, nats_tls_ca=ca, data_dir=tmp_path)

    with pytest.raises(NotConnectedError) as caught:
        await Bus(settings, SOURCE).connect()

    message = str(caught.value)
    assert "TLS" in message
    assert "certificate" in message
    assert f"{ENV_PREFIX}NATS_TLS_CA" in message


async def test_a_certificate_for_another_name_is_refused_unless_the_server_name_is_set(
    tls_server: EmbeddedNats, pki: Pki, tmp_path: Path
) -> None:
    url = f"tls://localhost:{tls_server.port}"  # the server, by a name not in its certificate
    wrong = Settings(nats_url=url, nats_tls_ca=pki.ca, data_dir=tmp_path)
    with pytest.raises(NotConnectedError, match="NATS_TLS_SERVER_NAME"):
        await Bus(wrong, SOURCE).connect()

    named = wrong.model_copy(update={"nats_tls_server_name": SERVER_NAME})
    async with Bus(named, SOURCE) as bus:
        assert bus.nc.is_connected


async def test_tls_settings_refuse_a_server_without_tls(
    nats_server: EmbeddedNats, pki: Pki, tmp_path: Path
) -> None:
    """Without the check nats-py would carry on in plaintext: the setting would be a wish."""
    settings = Settings(nats_url=nats_server.url, nats_tls_ca=pki.ca, data_dir=tmp_path)

    with pytest.raises(NotConnectedError, match="does not offer TLS"):
        await Bus(settings, SOURCE).connect()


# -- a server that verifies clients ------------------------------------------------------------


async def test_a_client_certificate_is_accepted_by_a_verifying_server(
    verifying_server: EmbeddedNats, pki: Pki, tmp_path: Path
) -> None:
    settings = Settings(
        nats_url=verifying_server.url,
        nats_tls_ca=pki.ca,
        nats_tls_cert=pki.client_cert,
        nats_tls_key=pki.client_key,
        data_dir=tmp_path,
    )

    reply = await _echo_over(settings)

    assert reply.text == "over tls"


async def test_a_client_without_a_certificate_is_refused_by_a_verifying_server(
    verifying_server: EmbeddedNats, pki: Pki, tmp_path: Path
) -> None:
    settings = Settings(nats_url=verifying_server.url, nats_tls_ca=pki.ca, data_dir=tmp_path)

    with pytest.raises(NotConnectedError) as caught:
        await Bus(settings, SOURCE).connect()

    assert "NATS_TLS_CERT" in str(caught.value)


# -- settings ----------------------------------------------------------------------------------


def test_a_key_without_a_certificate_says_what_to_set(pki: Pki) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(nats_tls_key=pki.client_key)

    message = str(caught.value)
    assert f"{ENV_PREFIX}NATS_TLS_CERT" in message
    assert pki.client_key.read_text() not in message


def test_a_certificate_without_a_key_says_what_to_set(pki: Pki) -> None:
    with pytest.raises(ConfigError, match=f"{ENV_PREFIX}NATS_TLS_KEY"):
        Settings.load(nats_tls_cert=pki.client_cert)


def test_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"

    with pytest.raises(ConfigError) as caught:
        Settings.load(nats_tls_ca=missing)

    message = str(caught.value)
    assert "nats_tls_ca" in message
    assert str(missing) in message
    assert f"{ENV_PREFIX}NATS_TLS_CA" in message


def test_a_key_that_is_not_a_key_is_named_without_its_content(pki: Pki, tmp_path: Path) -> None:
    """A wrong file in the key's place: the error shows its path, never what it holds."""
    secret = "SECRET-KEY-MATERIAL-0123456789"
    not_a_key = tmp_path / "key.pem"
    not_a_key.write_text(f"-----BEGIN PRIVATE KEY-----\n{secret}\n", encoding="utf-8")
    settings = Settings(nats_tls_ca=pki.ca, nats_tls_cert=pki.client_cert, nats_tls_key=not_a_key)

    with pytest.raises(ConfigError) as caught:
        Bus(settings, SOURCE)

    assert str(not_a_key) in str(caught.value)
    assert secret not in str(caught.value)
    assert secret not in repr(settings)


def test_tls_is_off_by_default_and_on_with_a_tls_url_or_any_tls_setting(pki: Pki) -> None:
    assert not Settings(nats_url="nats://127.0.0.1:4222").nats_tls
    assert Settings(nats_url="tls://127.0.0.1:4222").nats_tls
    assert Settings(nats_tls_ca=pki.ca).nats_tls
    assert Settings(nats_tls_server_name="nats.internal").nats_tls
    assert Settings(nats_tls_cert=pki.client_cert, nats_tls_key=pki.client_key).nats_tls

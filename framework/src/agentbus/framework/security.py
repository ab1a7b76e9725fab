"""How a connection to NATS proves who it is and encrypts: nkey, credentials, TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

from faststream.nats import NatsCredentials, NatsSecurity, NatsToken
from faststream.nats.security import NatsNKey, NatsUserPassword
from nats.aio.client import Client

from agentbus.framework.config import Settings, split_urls
from agentbus.framework.errors import ConfigError


def tls_context(settings: Settings, url: str | None = None) -> ssl.SSLContext | None:
    """The client's TLS context when TLS is on (``Settings.nats_tls``, or a ``tls://`` ``url``),
    else ``None``."""
    if not (settings.nats_tls or any(u.startswith("tls://") for u in split_urls(url or ""))):
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"nats_tls_ca: {settings.nats_tls_ca} is not a PEM CA bundle ({reason(exc)}); "
            "fix AGENTBUS_NATS_TLS_CA"
        ) from None
    if settings.nats_tls_cert and settings.nats_tls_key:
        try:
            context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key)
        except (OSError, ssl.SSLError) as exc:  # the message names no key material
            raise ConfigError(
                f"nats_tls_cert/nats_tls_key: {settings.nats_tls_cert} and "
                f"{settings.nats_tls_key} are not a PEM certificate and its unencrypted key "
                f"({reason(exc)}); fix AGENTBUS_NATS_TLS_CERT and AGENTBUS_NATS_TLS_KEY"
            ) from None
    return context


def reason(exc: OSError) -> str:
    """What went wrong, in OpenSSL's words when it has them (never a file's content)."""
    return (
        getattr(exc, "verify_message", None)
        or getattr(exc, "reason", None)
        or exc.strerror
        or type(exc).__name__
    )


def tls_advice(exc: ssl.SSLError) -> str:
    """Which setting a failed TLS handshake points at."""
    text = str(exc).lower()
    if "mismatch" in text:  # hostname or IP address not in the server's certificate
        return (
            "the server's certificate is not for the URL's host: connect by a name the "
            "certificate carries, or set AGENTBUS_NATS_TLS_SERVER_NAME to it"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            "the server's certificate is not signed by a trusted CA: set AGENTBUS_NATS_TLS_CA "
            "to the CA bundle that signed it"
        )
    return (
        "the server refused the TLS handshake; if it verifies clients, set "
        "AGENTBUS_NATS_TLS_CERT and AGENTBUS_NATS_TLS_KEY to a client certificate signed by "
        "the CA it trusts (and check AGENTBUS_NATS_TLS_CA)"
    )


def speaks_tls(nc: Client) -> bool:
    """Whether nats-py upgraded the connection to TLS. It does exactly when the server's INFO
    requires TLS; nats-py 2.16 otherwise carries on in plaintext, even for a ``tls://`` URL."""
    url = nc.connected_url
    return bool(url and url.scheme == "wss") or bool(nc._server_info.get("tls_required"))


def security_for(
    settings: Settings, context: ssl.SSLContext | None, nkey_file: Path | None
) -> NatsSecurity | None:
    """One way to authenticate (an nkey seed, else a credentials file, else a token, else
    user and password), over TLS when ``context`` is given."""
    server_name = settings.nats_tls_server_name
    if nkey_file is not None:
        return NatsNKey(nkey_file, ssl_context=context, tls_hostname=server_name)
    if settings.nats_creds_file is not None:
        return NatsCredentials(
            str(settings.nats_creds_file), ssl_context=context, tls_hostname=server_name
        )
    if settings.nats_token is not None:
        return NatsToken(
            settings.nats_token.get_secret_value(), ssl_context=context, tls_hostname=server_name
        )
    if settings.nats_user and settings.nats_password is not None:
        return NatsUserPassword(
            settings.nats_user,
            settings.nats_password.get_secret_value(),
            ssl_context=context,
            tls_hostname=server_name,
        )
    if context is not None:
        return NatsSecurity(ssl_context=context, tls_hostname=server_name)
    return None

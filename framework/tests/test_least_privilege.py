"""Identities and least privilege against a real nats-server with grants derived from code.

The server here runs the config ``AuthFolder.write`` makes: a service identity ("echo")
with the grants of its class, a caller ("alice") that may call its interface, another
("mallory") that may too, and the operator. What each may not do is refused by the
server itself, and who called is what the subject says, whatever the headers claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import nats
import nats.errors
import pytest
from framework_helpers import EchoReply, EchoRequest, echo_interface

from agentbus.framework import (
    Bus,
    MessageContext,
    PermissionDeniedError,
    Service,
    Settings,
    handles,
    key_value,
)
from agentbus.framework.auth import (
    AuthFolder,
    Identity,
    client_grants,
    operator_grants,
    service_grants,
)
from agentbus.framework.auth import grants as g
from agentbus.framework.embedded import EmbeddedNats
from agentbus.framework.testing import child_environment, settings_as
from agentbus.framework.wire import to_json
from agentbus.interfaces import Source
from agentbus.interfaces.registry import Registry
from agentbus.interfaces.subjects import as_caller, callers, subject_for

ECHO = echo_interface()
OWNED_BUCKET = "agentbus_test_owned"


class Echo(Service):
    """Answers with the caller the server vouched for."""

    name = "echo"

    @handles(ECHO)
    async def answer(self, request: EchoRequest, ctx: MessageContext) -> EchoReply:
        return EchoReply(text=ctx.caller, instance=self.instance, correlation_id="-")

    @classmethod
    def extra_grants(cls, name: str, environment: Mapping[str, str]) -> g.Grants:
        return g.write_bucket(OWNED_BUCKET)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[AuthFolder, str]]:
    folder = AuthFolder(tmp_path_factory.mktemp("lp-auth"))
    folder.write(
        [
            Identity("echo", "service", service_grants(Echo, "echo")),
            Identity("alice", "client", client_grants("alice", (ECHO,))),
            Identity("mallory", "client", client_grants("mallory", (ECHO,))),
            Identity("operator", "operator", operator_grants(Registry([ECHO]))),
        ]
    )
    server = EmbeddedNats(tmp_path_factory.mktemp("lp-nats"), auth=folder.server_config)
    with server:
        yield folder, server.url


def as_identity(cluster: tuple[AuthFolder, str], name: str, tmp: Path) -> Settings:
    return settings_as(*cluster, name, tmp)


@pytest.fixture
async def echo(cluster: tuple[AuthFolder, str], tmp_path: Path) -> AsyncIterator[Echo]:
    async with Echo(as_identity(cluster, "echo", tmp_path)) as service:
        yield service


@contextlib.asynccontextmanager
async def client(cluster: tuple[AuthFolder, str], name: str, tmp: Path) -> AsyncIterator[Bus]:
    async with Bus(as_identity(cluster, name, tmp), Source(name, "t")) as bus:
        yield bus


async def raw(cluster: tuple[AuthFolder, str], name: str) -> nats.NATS:
    """A plain nats-py client holding ``name``'s key, as an attacker with it would be."""
    folder, url = cluster
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(
        url,
        nkeys_seed=str(folder.seed_file(name)),
        error_cb=on_error,
        allow_reconnect=False,
    )
    nc.refusals = errors  # type: ignore[attr-defined]
    return nc


async def refused(nc: nats.NATS, what: str) -> None:
    """Wait for the server's permissions violation about ``what``."""
    for _ in range(100):
        if any(what.lower() in str(e).lower() for e in nc.refusals):  # type: ignore[attr-defined]
            return
        await nc.flush()
        await asyncio.sleep(0.02)
    raise AssertionError(f"the server did not refuse {what}; errors: {nc.refusals}")  # type: ignore[attr-defined]


async def test_an_anonymous_connection_is_refused_and_says_what_to_do(
    cluster: tuple[AuthFolder, str], tmp_path: Path
) -> None:
    where = urlsplit(cluster[1])
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        assert (await reader.readline()).startswith(b"INFO")
        writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
        answer = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    assert answer.startswith(b"-ERR 'Authorization Violation'"), answer
    # A client without a key (in a child: nats-py leaves a refused connection's socket open)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "agentbus.framework.cli", "--nats-url", cluster[1], "status"],
        env=child_environment(keep_key=False) | {"AGENTBUS_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    message = " ".join(done.stderr.split())
    assert "refused identity 'cli'" in message
    assert "agentbus auth init" in message


async def test_the_caller_is_the_identity_the_server_let_through_whatever_the_headers(
    cluster: tuple[AuthFolder, str], echo: Echo, tmp_path: Path
) -> None:
    async with client(cluster, "alice", tmp_path) as alice:
        assert (await alice.request(ECHO, EchoRequest(text="x"))).text == "alice"
        forged = {
            "Agentbus": "v=1;src=operator/x;cid=1;iface=" + ECHO.name,
            "Nats-Request-Info": '{"acc":"$G","user":"operator"}',
        }
        reply = await alice.request_raw(
            as_caller(subject_for(ECHO), "alice"), to_json(EchoRequest(text="x")), headers=forged
        )
        assert EchoReply.model_validate_json(reply.data).text == "alice"


async def test_a_caller_cannot_call_under_another_identity(
    cluster: tuple[AuthFolder, str], echo: Echo, tmp_path: Path
) -> None:
    async with client(cluster, "mallory", tmp_path) as mallory:
        with pytest.raises(PermissionDeniedError, match=r"mallory.*agentbus auth"):
            await mallory.request_raw(
                as_caller(subject_for(ECHO), "alice"), to_json(EchoRequest(text="x")), timeout=5
            )


async def test_only_the_service_identity_serves_its_interface_or_joins_its_queue_group(
    cluster: tuple[AuthFolder, str], echo: Echo
) -> None:
    nc = await raw(cluster, "mallory")
    try:
        await nc.subscribe(callers(subject_for(ECHO)), queue="echo")
        await refused(nc, f'subscription to "{callers(subject_for(ECHO))}"')
        nc.refusals.clear()  # type: ignore[attr-defined]
        await nc.subscribe(callers(subject_for(ECHO)))
        await refused(nc, "subscription to")
    finally:
        await nc.close()
    operator = await raw(cluster, "operator")  # the operator watches, but cannot answer
    try:
        await operator.subscribe(callers(subject_for(ECHO)), queue="echo")
        await refused(operator, "subscription to")
    finally:
        await operator.close()


async def test_nobody_reads_another_identitys_replies(
    cluster: tuple[AuthFolder, str], echo: Echo
) -> None:
    nc = await raw(cluster, "mallory")
    try:
        await nc.subscribe("_INBOX_alice.>")
        await refused(nc, '"_inbox_alice.>"')
        nc.refusals.clear()  # type: ignore[attr-defined]
        await nc.subscribe("_INBOX.>")
        await refused(nc, '"_inbox.>"')
    finally:
        await nc.close()


async def test_kv_keys_are_written_only_by_their_owner(
    cluster: tuple[AuthFolder, str], echo: Echo, tmp_path: Path
) -> None:
    kv = await key_value(echo.bus.js, OWNED_BUCKET)
    await kv.put("state", b"by echo")
    nc = await raw(cluster, "mallory")
    try:
        await nc.publish(f"$KV.{OWNED_BUCKET}.state", b"forged")
        await refused(nc, f"$kv.{OWNED_BUCKET}.state")
        await nc.publish(f"$JS.API.STREAM.PURGE.KV_{OWNED_BUCKET}", b"")
        await refused(nc, f"$js.api.stream.purge.kv_{OWNED_BUCKET}")
    finally:
        await nc.close()
    assert (await kv.get("state")).value == b"by echo"


async def test_a_service_calling_what_it_did_not_declare_is_stopped_with_the_fix(
    cluster: tuple[AuthFolder, str], echo: Echo
) -> None:
    other = echo_interface()
    with pytest.raises(PermissionDeniedError, match="add it to the service's `uses`"):
        await echo.bus.request(other, EchoRequest(text="x"))


def test_seed_files_are_private_and_the_server_config_holds_public_keys_only(
    cluster: tuple[AuthFolder, str],
) -> None:
    folder, _ = cluster
    config = folder.server_config.read_text()
    for name in ("echo", "alice", "mallory", "operator"):
        seed = folder.seed_file(name)
        assert seed.stat().st_mode & 0o777 == 0o600
        assert seed.read_text().strip() not in config
    assert folder.path.stat().st_mode & 0o777 == 0o700

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

import pytest
from framework_helpers import EchoReply, EchoRequest, Note, echo_interface, note_interface

from agentbus.framework import (
    Bus,
    MessageContext,
    PermissionDeniedError,
    Service,
    Settings,
    handles,
    key_value,
    subscribes,
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
from agentbus.framework.testing import Intruder, child_environment, eventually, settings_as
from agentbus.framework.wire import to_json
from agentbus.interfaces import Source
from agentbus.interfaces.registry import Registry
from agentbus.interfaces.subjects import as_caller, callers, subject_for

ECHO = echo_interface()
NOTE = note_interface()
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


class Listener(Service):
    """Consumes an event through its durable consumer (fetched into its private inbox)."""

    name = "listener"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.heard: list[str] = []

    @subscribes(NOTE)
    async def on_note(self, note: Note, ctx: MessageContext) -> None:
        self.heard.append(note.text)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[AuthFolder, str]]:
    folder = AuthFolder(tmp_path_factory.mktemp("lp-auth"))
    folder.write(
        [
            Identity("echo", "service", service_grants(Echo, "echo")),
            Identity("listener", "service", service_grants(Listener, "listener")),
            Identity("alice", "client", client_grants("alice", (ECHO,))),
            Identity("mallory", "client", client_grants("mallory", (ECHO,))),
            Identity("operator", "operator", operator_grants(Registry([ECHO, NOTE]))),
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


async def raw(cluster: tuple[AuthFolder, str], name: str) -> Intruder:
    """A plain nats-py client holding ``name``'s key, as an attacker with it would be."""
    folder, url = cluster
    return await Intruder.connect(url, folder.seed_file(name))


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
    mallory = await raw(cluster, "mallory")
    try:
        await mallory.nc.subscribe(callers(subject_for(ECHO)), queue="echo")
        await mallory.refused(f'subscription to "{callers(subject_for(ECHO))}"')
        mallory.refusals.clear()
        await mallory.nc.subscribe(callers(subject_for(ECHO)))
        await mallory.refused("subscription to")
    finally:
        await mallory.close()
    operator = await raw(cluster, "operator")  # the operator watches, but cannot answer
    try:
        await operator.nc.subscribe(callers(subject_for(ECHO)), queue="echo")
        await operator.refused("subscription to")
    finally:
        await operator.close()


async def test_nobody_reads_another_identitys_replies(
    cluster: tuple[AuthFolder, str], echo: Echo
) -> None:
    mallory = await raw(cluster, "mallory")
    try:
        await mallory.nc.subscribe("_INBOX_alice.>")
        await mallory.refused('"_inbox_alice.>"')
        mallory.refusals.clear()
        await mallory.nc.subscribe("_INBOX.>")
        await mallory.refused('"_inbox.>"')
    finally:
        await mallory.close()


async def test_a_subscriber_consumes_events_under_its_own_grants(
    cluster: tuple[AuthFolder, str], tmp_path: Path
) -> None:
    async with (
        Listener(as_identity(cluster, "listener", tmp_path)) as listener,
        client(cluster, "operator", tmp_path) as operator,
    ):
        await operator.publish(NOTE, Note(text="heard"))
        await eventually(lambda: listener.heard == ["heard"], what="the listener's event")


async def test_kv_keys_are_written_only_by_their_owner(
    cluster: tuple[AuthFolder, str], echo: Echo, tmp_path: Path
) -> None:
    kv = await key_value(echo.bus.js, OWNED_BUCKET)
    await kv.put("state", b"by echo")
    mallory = await raw(cluster, "mallory")
    try:
        await mallory.publish(f"$KV.{OWNED_BUCKET}.state", b"forged")
        await mallory.refused(f"$kv.{OWNED_BUCKET}.state")
        await mallory.publish(f"$JS.API.STREAM.PURGE.KV_{OWNED_BUCKET}", b"")
        await mallory.refused(f"$js.api.stream.purge.kv_{OWNED_BUCKET}")
    finally:
        await mallory.close()
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

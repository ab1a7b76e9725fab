"""A malformed message cannot deafen a service (issue 12, item 6).

A raw client publishes what nats-server forwards but nats-py 2.16 cannot decode (a
reply subject, a subject or a header status line with invalid UTF-8); unguarded, each
stops the read loop of every connection it reaches, which still reports itself
connected. Afterwards every service and the caller must answer again within 2 s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import nats
import nkeys
import pytest
from framework_helpers import (
    EchoReply,
    EchoRequest,
    echo_interface,
    echo_service,
    gather_replies,
    unique,
)
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig

from agentbus.framework import DEAD_LETTER, EVENTS, declare_all
from agentbus.framework.bus import Bus
from agentbus.framework.config import Settings
from agentbus.framework.events import DEAD_REASON, DEAD_SUBJECT
from agentbus.framework.nats_guard import guard_nats_client, is_guarded, shown
from agentbus.framework.testing import MockService, eventually
from agentbus.framework.testing.plugin import StartService
from agentbus.interfaces import subjects
from agentbus.interfaces.subjects import as_caller, subject_for

BAD = b"\xff\xfe"


def pub(subject: bytes, reply: bytes = b"", payload: bytes = b"x") -> bytes:
    reply_part = b" " + reply if reply else b""
    return b"PUB %s%s %d\r\n%s\r\n" % (subject, reply_part, len(payload), payload)


def hpub(subject: bytes, header_block: bytes, payload: bytes = b"x") -> bytes:
    size = len(header_block)
    return b"HPUB %s %d %d\r\n%s%s\r\n" % (
        subject,
        size,
        size + len(payload),
        header_block,
        payload,
    )


def signed(info: dict[str, object]) -> dict[str, str]:
    """The nkey and nonce signature of the session's admin key (the server refuses
    anonymous clients)."""
    seed = bytearray(Path(os.environ["AGENTBUS_NATS_NKEY_FILE"]).read_bytes().strip())
    pair = nkeys.from_seed(seed)
    signature = base64.b64encode(pair.sign(str(info["nonce"]).encode())).decode()
    return {"nkey": pair.public_key.decode(), "sig": signature}


async def send_raw(nats_url: str, frames: bytes) -> None:
    """Publish ``frames`` as a hand-written protocol client; return once the server read them."""
    where = urlsplit(nats_url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        info = await reader.readline()
        assert info.startswith(b"INFO"), info
        connect = {"verbose": False, "pedantic": False, "headers": True, "protocol": 1}
        connect |= signed(json.loads(info[len(b"INFO ") :]))
        writer.write(b"CONNECT " + json.dumps(connect).encode() + b"\r\n" + frames + b"PING\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.readline(), 5)
        assert answer == b"PONG\r\n", f"the server refused the raw publish: {answer!r}"
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def reply_subject_of_the_callers_requests(nats_url: str, bus: Bus, subject: str) -> bytes:
    """What an eavesdropper on ``subject`` learns: the caller's reply subject."""
    spy = await nats.connect(nats_url, nkeys_seed=os.environ["AGENTBUS_NATS_NKEY_FILE"])
    try:
        seen: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def note(msg: Msg) -> None:
            if not seen.done():
                seen.set_result(msg.reply)

        await spy.subscribe(subject, cb=note)
        await spy.flush()
        await bus.request_raw(subject, EchoRequest(text="hi").model_dump_json().encode())
        return (await asyncio.wait_for(seen, 5)).encode()
    finally:
        await spy.close()


Poison = Callable[[str, Bus, str], Awaitable[bytes]]


async def bad_reply_on_ping(nats_url: str, bus: Bus, echo_subject: str) -> bytes:
    return pub(b"$SRV.PING", reply=BAD)


async def bad_reply_on_a_request_subject(nats_url: str, bus: Bus, echo_subject: str) -> bytes:
    return pub(echo_subject.encode(), reply=b"_INBOX." + BAD)


async def bad_status_line_on_ping(nats_url: str, bus: Bus, echo_subject: str) -> bytes:
    return hpub(b"$SRV.PING", b"NATS/1.0 " + BAD + b"\r\n\r\n") + hpub(
        b"$SRV.PING", b"NATS/1.0 100 " + BAD + b"\r\n\r\n"
    )


async def bad_header_names_and_values_on_ping(nats_url: str, bus: Bus, echo_subject: str) -> bytes:
    """nats-py 2.16 already decodes these with replacement; kept so a regression shows."""
    return hpub(b"$SRV.PING", b"NATS/1.0\r\nX-Bad: " + BAD + b"\r\n" + BAD + b": v\r\n\r\n")


async def bad_subject_in_the_callers_inbox(nats_url: str, bus: Bus, echo_subject: str) -> bytes:
    reply = await reply_subject_of_the_callers_requests(nats_url, bus, echo_subject)
    mux_prefix = reply.rsplit(b".", 1)[0]
    return pub(mux_prefix + b"." + BAD)


@pytest.mark.parametrize(
    "poison",
    [
        bad_reply_on_ping,
        bad_reply_on_a_request_subject,
        bad_status_line_on_ping,
        bad_header_names_and_values_on_ping,
        bad_subject_in_the_callers_inbox,
    ],
)
async def test_a_poisoned_publish_leaves_every_service_answering(
    start_service: StartService,
    bus: Bus,
    settings: Settings,
    nats_url: str,
    poison: Poison,
    caplog: pytest.LogCaptureFixture,
) -> None:
    echo = echo_interface()
    echo_cls = echo_service(echo)
    await start_service(echo_cls, instance="one")
    await start_service(echo_cls, instance="two")
    mocked = echo_interface()
    mock_reply = EchoReply(text="mock", instance="mock", correlation_id="-")
    async with MockService({mocked: mock_reply}, settings, name=unique("mock")) as mock:
        frames = await poison(nats_url, bus, as_caller(subject_for(echo), "test"))
        with caplog.at_level(logging.WARNING, logger="agentbus.nats_guard"):
            await send_raw(nats_url, frames)

            async def everyone_answers() -> bool:
                # Both replicas: the queue group may hand the poison to either of them.
                answered_by = set()
                for _ in range(8):
                    reply = await bus.request(echo, EchoRequest(text="again"), timeout=0.5)
                    answered_by.add(reply.instance)
                assert (await bus.request(mocked, EchoRequest(text="m"), timeout=0.5)) == mock_reply
                pings = await gather_replies(bus, "$SRV.PING", expected=3, timeout=0.5)
                names = {(json.loads(p.data)["name"], json.loads(p.data)["id"]) for p in pings}
                wanted = {
                    (echo_cls.name, "one"),
                    (echo_cls.name, "two"),
                    (mock.name, mock.instance),
                }
                return wanted <= names and answered_by == {"one", "two"}

            await eventually(
                everyone_answers, timeout=2.0, what="every service and the caller answering"
            )

    if poison is not bad_header_names_and_values_on_ping:
        dropped = [r.getMessage() for r in caplog.records if r.name == "agentbus.nats_guard"]
        assert dropped, "the guard should have logged the malformed message it dropped"
        for message in dropped:
            assert message.startswith("dropped a malformed NATS message on subject '")
            assert "\xff" not in message, "undecodable bytes are shown escaped"
            assert "\ufffd" not in message, "undecodable bytes are shown escaped"
        if poison in (bad_reply_on_ping, bad_subject_in_the_callers_inbox):
            assert any("\\xff\\xfe" in m for m in dropped), dropped


async def test_the_guard_applies_to_the_installed_nats_py(bus: Bus) -> None:
    """Fails when a nats-py upgrade renames what the guard wraps: check nats_guard's docstring."""
    assert guard_nats_client()
    assert is_guarded()


def test_subjects_are_logged_escaped() -> None:
    assert shown(b"a.\xff\x1b[31m") == "'a.\\xff\\x1b[31m'"
    assert shown(b"x" * 500).endswith("'...")


async def test_an_undecodable_stored_delivery_is_dead_lettered_not_redelivered_for_ever(
    bus: Bus, nats_url: str
) -> None:
    """JetStream stores a message whose subject is not UTF-8, and a wildcard consumer gets
    it; nats-py cannot decode it, so unretired it would come back every ack wait for ever.
    The guard parks it in the dead-letter stream and terminates the delivery."""
    await declare_all(bus.js)
    prefix = f"agentbus.events.{unique('poison')}"
    durable = unique("wild")
    consumer = await bus.js.pull_subscribe(
        f"{prefix}.>", durable=durable, config=ConsumerConfig(ack_wait=1.0)
    )
    await send_raw(nats_url, pub(prefix.encode() + b"." + BAD, payload=b"poison"))
    await bus.publish_raw(f"{prefix}.fine", b"fine")

    async def fine_one() -> bool:
        try:
            fetched = await consumer.fetch(1, timeout=0.5)
        except nats.errors.TimeoutError:
            return False
        for msg in fetched:
            await msg.ack()
        return [m.data for m in fetched] == [b"fine"]

    await eventually(fine_one, what="the decodable message after the poisoned one")
    parked = await bus.js.get_last_msg(DEAD_LETTER.name, f"{subjects.DEAD_LETTER}.malformed")
    assert parked.data == b"poison"
    assert parked.headers is not None
    assert parked.headers[DEAD_REASON] == "malformed_subject"
    assert "\\xff\\xfe" in parked.headers[DEAD_SUBJECT]

    await asyncio.sleep(1.5)  # past the ack wait: a delivery not terminated comes back
    with pytest.raises(nats.errors.TimeoutError):
        await consumer.fetch(1, timeout=0.5)
    info = await bus.js.consumer_info(EVENTS.name, durable)
    assert (info.num_ack_pending, info.num_redelivered) == (0, 0)

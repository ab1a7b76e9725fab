"""One malformed message must not stop a nats-py connection from reading.

**What.** :func:`guard_nats_client` wraps nats-py's ``Client._process_msg``, the one
method its protocol parser hands every received ``MSG``/``HMSG`` to, so that an
error while turning that message's bytes into a ``Msg`` drops the message (logged at
WARNING, the subject shown escaped) and the read loop goes on.

**Why.** nats-py decodes the subject, the reply subject and a header status line with
strict UTF-8. nats-server forwards any bytes a client publishes there, so one
``PUB $SRV.PING <reply with \\xff> 0`` from any client raises ``UnicodeDecodeError``
inside every subscriber's ``_read_loop``; its catch-all ``except Exception`` logs
"encountered error" and stops reading, and the client still says it is connected
(status ``CONNECTED``, ``flush()`` silently skips its PING when the loop is gone), so
nothing reconnects until the unanswered pings make it stale, minutes later. Every
agentbus service subscribes to ``$SRV.PING``: one message deafened them all.

Errors the read loop handles itself (``ProtocolError``, ``OSError``: it reconnects) and
cancellation pass through unchanged; only what would have silently killed the loop is
confined to the message that caused it. Header values with invalid UTF-8 are already
decoded with replacement by nats-py and need nothing from here.

**Checked against** nats-py 2.16.0 (``nats/aio/client.py``: ``_read_loop``,
``_process_msg``, ``_process_headers``, ``_build_message``; ``nats/protocol/parser.py``
calls ``self.nc._process_msg(sid, subject, reply, payload, hdr)``).
``framework/tests/test_poisoned_messages.py`` fails when an upgrade renames the method
(the guard no longer applies) or routes messages around it (the poison deafens again).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import nats.errors
from nats.aio.client import Client

from agentbus.framework.events import DEAD_ERROR, DEAD_REASON, DEAD_SUBJECT
from agentbus.interfaces.metadata import MSG_ID
from agentbus.interfaces.subjects import DEAD_LETTER

log = logging.getLogger("agentbus.nats_guard")

_MARK = "__agentbus_guarded__"
JS_ACK_PREFIX = "$JS.ACK."
"""The reply subject of a JetStream delivery (acked, nak'ed or terminated there)."""
_SHOWN_BYTES = 120

# What nats-py's read loop already turns into a reconnect, and what must never be swallowed.
_HANDLED_BY_THE_LOOP = (nats.errors.ProtocolError, OSError)


def shown(raw: object) -> str:
    """A subject as it may be logged: quoted, every non-ASCII or control byte as ``\\xNN``."""
    if isinstance(raw, bytes | bytearray):
        suffix = "..." if len(raw) > _SHOWN_BYTES else ""
        return repr(bytes(raw[:_SHOWN_BYTES]))[1:] + suffix  # drop the b of b'...'
    return repr(raw)


def _guarded(process_msg: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(process_msg)
    async def process_msg_or_drop(
        self: Client, sid: int, subject: bytes, reply: bytes, *rest: Any, **kwargs: Any
    ) -> None:
        try:
            await process_msg(self, sid, subject, reply, *rest, **kwargs)
        except _HANDLED_BY_THE_LOOP:
            raise
        except Exception as exc:
            log.warning(
                "dropped a malformed NATS message on subject %s (reply %s): %s; the connection "
                "goes on. Find the publisher (the subject says where it came in) and make it "
                "send UTF-8 subjects and headers",
                shown(subject),
                shown(reply),
                type(exc).__name__,
            )
            payload = rest[0] if rest and isinstance(rest[0], bytes) else b""
            await _retire_delivery(self, subject, reply, payload)

    setattr(process_msg_or_drop, _MARK, True)
    return process_msg_or_drop


async def _retire_delivery(client: Client, subject: bytes, reply: bytes, payload: bytes) -> None:
    """A JetStream delivery that cannot be decoded would come back every ack wait, for
    ever, and never reach a handler that could count its tries: park its payload in the
    dead-letter stream (``agentbus.deadletter.malformed``, the subject escaped in a
    header, de-duplicated per consumer and stream sequence) and terminate the delivery."""
    try:
        ack = reply.decode("ascii")
    except UnicodeDecodeError:
        return
    if not ack.startswith(JS_ACK_PREFIX):
        return
    headers = {
        MSG_ID: f"malformed:{ack.split('.', 2)[2]}",
        DEAD_REASON: "malformed_subject",
        DEAD_ERROR: "the subject or headers are not UTF-8; the message cannot be decoded",
        DEAD_SUBJECT: shown(subject),
    }
    try:
        await client.publish(f"{DEAD_LETTER}.malformed", payload, headers=headers)
        await client.publish(ack, b"+TERM")
    except Exception:  # the connection may be closing: the delivery comes back later
        log.warning("could not retire the malformed delivery %s", ack, exc_info=True)


def is_guarded() -> bool:
    """Whether nats-py's ``Client`` currently drops malformed messages instead of dying."""
    return getattr(getattr(Client, "_process_msg", None), _MARK, False) is True


def guard_nats_client() -> bool:
    """Install the guard on nats-py's ``Client`` (idempotent); ``False`` if it cannot apply."""
    if is_guarded():
        return True
    original = getattr(Client, "_process_msg", None)
    if original is None or not inspect.iscoroutinefunction(original):
        log.warning(
            "nats-py %s has no coroutine Client._process_msg: the guard against malformed "
            "messages is not applied, so one bad publish may stop this connection reading; "
            "check agentbus.framework.nats_guard against this nats-py version",
            _nats_version(),
        )
        return False
    Client._process_msg = _guarded(original)  # type: ignore[method-assign,assignment]
    return True


def _nats_version() -> str:
    try:
        return version("nats-py")
    except PackageNotFoundError:
        return "(unknown version)"


__all__ = ["guard_nats_client", "is_guarded", "shown"]

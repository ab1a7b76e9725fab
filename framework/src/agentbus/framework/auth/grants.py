"""What one identity may do on the bus, as the subjects nats-server checks.

A :class:`Grants` is a publish allow-list, a subscribe allow-list (entries may name a
queue group: ``"<subject> <queue>"``) and whether the identity may answer requests it
received (``allow_responses``). The builders below spell every subject agentbus uses, so
that roles (``roles.py``) are written in terms of interfaces, streams and buckets.

Request subjects end with the caller's identity (``subjects.as_caller``): ``call``
grants only the identity's own token, which is how a service knows, from the subject
alone, who the server let through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from agentbus.interfaces import subjects
from agentbus.interfaces.message import Interface, InterfaceKind

JS_API = "$JS.API"
RESPONSE_LIMIT = 100_000
"""Replies (stream chunks included) one request may get from an identity that received it."""
RESPONSE_WINDOW = "10m"
"""How long after a request its receiver may still answer (the longest tool call is 330 s)."""


def inbox_prefix(identity: str) -> str:
    """``_INBOX_<identity>``: the identity's private reply subjects (nats-py ``inbox_prefix``)."""
    return f"_INBOX_{subjects.token(identity)}"


@dataclass(frozen=True)
class Grants:
    """Subjects an identity may publish and subscribe to."""

    publish: frozenset[str] = field(default_factory=frozenset)
    subscribe: frozenset[str] = field(default_factory=frozenset)
    responses: bool = False

    def __or__(self, other: Grants) -> Grants:
        return Grants(
            self.publish | other.publish,
            self.subscribe | other.subscribe,
            self.responses or other.responses,
        )

    @classmethod
    def of(
        cls, publish: Iterable[str] = (), subscribe: Iterable[str] = (), *, responses: bool = False
    ) -> Grants:
        return cls(frozenset(publish), frozenset(subscribe), responses)

    def permissions(self) -> dict[str, Any]:
        """nats-server's ``permissions`` map: anything not listed is refused."""
        permissions: dict[str, Any] = {
            "publish": {"allow": sorted(self.publish) or ["_AGENTBUS_NOTHING"]},
            "subscribe": {"allow": sorted(self.subscribe) or ["_AGENTBUS_NOTHING"]},
        }
        if self.responses:
            permissions["allow_responses"] = {"max": RESPONSE_LIMIT, "expires": RESPONSE_WINDOW}
        return permissions

    def to_json(self) -> dict[str, Any]:
        return {
            "publish": sorted(self.publish),
            "subscribe": sorted(self.subscribe),
            "responses": self.responses,
        }


def everything() -> Grants:
    """Every subject (the test harness's admin; never an identity of a cluster)."""
    return Grants.of([">"], [">"], responses=True)


def connection(identity: str) -> Grants:
    """What every connection needs: its own inbox, stream cancels, JetStream's account info."""
    inbox = inbox_prefix(identity)
    return Grants.of(
        publish=[f"{inbox}.*.cancel", f"{JS_API}.INFO"],
        subscribe=[f"{inbox}.>"],
    )


def serve(interface: Interface[Any, Any], queue: str) -> Grants:
    """Answer ``interface`` in queue group ``queue`` (and on an instance's direct subject)."""
    return serve_request(interface.name, interface.version.major, queue)


def serve_request(name: str, major: int, queue: str) -> Grants:
    """Answer request (or stream) interface ``name`` v``major`` in queue group ``queue``,
    and on an instance's direct subject (by name: a component's context.json declares it)."""
    subject = subjects.request_subject(name, major)
    return Grants.of(
        subscribe=[
            f"{subjects.callers(subject)} {queue}",
            subjects.callers(_any_instance(name, major)),
            "_INBOX_*.*.cancel",  # a stream's caller may cancel it (endpoint._cancel_subject)
        ],
        responses=True,
    )


def _any_instance(name: str, major: int) -> str:
    """Every instance's direct subject of ``name`` v``major``."""
    return subjects.direct_subject("INSTANCE", name, major).replace(".INSTANCE.", ".*.")


def discoverable(service: str) -> Grants:
    """Answer ``$SRV.PING|INFO|STATS`` for everyone, for this service, for one instance."""
    return Grants.of(
        subscribe=["$SRV.*", f"$SRV.*.{service}", f"$SRV.*.{service}.*"], responses=True
    )


def discover() -> Grants:
    """Ask which services run (``$SRV.PING``...): ``agentbus status``, the deploy probe."""
    return Grants.of(publish=["$SRV.>"])


def call(interface: Interface[Any, Any], identity: str) -> Grants:
    """Send ``interface`` requests as ``identity`` (also to one instance's direct subject)."""
    return call_request(interface.name, interface.version.major, identity)


def call_request(name: str, major: int, identity: str) -> Grants:
    """Send requests of ``name`` v``major`` as ``identity``, also to any instance's direct
    subject (the deploy probe smoke-tests a new version there)."""
    subject = subjects.request_subject(name, major)
    return Grants.of(
        publish=[
            subjects.as_caller(subject, identity),
            subjects.as_caller(_any_instance(name, major), identity),
        ]
    )


def emit(interface: Interface[Any, Any]) -> Grants:
    """Publish ``interface`` events (with or without a qualifier token)."""
    subject = subjects.subject_for(interface)
    if interface.kind is not InterfaceKind.EVENT:
        raise ValueError(f"{interface.key} is not an event")
    return Grants.of(publish=[subject, f"{subject}.>"])


def publish(*patterns: str) -> Grants:
    return Grants.of(publish=patterns)


def subscribe(*patterns: str) -> Grants:
    return Grants.of(subscribe=patterns)


def read_stream(stream: str) -> Grants:
    """Read a stream: its info, single messages, and ephemeral consumers (KV watches)."""
    return Grants.of(
        publish=[
            f"{JS_API}.STREAM.INFO.{stream}",
            f"{JS_API}.STREAM.MSG.GET.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}",
            f"{JS_API}.DIRECT.GET.{stream}.>",
            f"{JS_API}.CONSUMER.CREATE.{stream}",
            f"{JS_API}.CONSUMER.INFO.{stream}.*",
        ]
    )


def create_stream(stream: str) -> Grants:
    """Create ``stream`` when it is missing (an existing stream cannot be changed this way:
    nats-server refuses a create whose settings differ)."""
    return Grants.of(publish=[f"{JS_API}.STREAM.CREATE.{stream}", f"{JS_API}.STREAM.INFO.{stream}"])


def consume(stream: str, durable: str) -> Grants:
    """Own the durable consumer ``durable`` of ``stream``: create, read, fetch, ack, delete."""
    consumer = f"{stream}.{durable}"
    return read_stream(stream) | Grants.of(
        publish=[
            f"{JS_API}.CONSUMER.CREATE.{consumer}",
            f"{JS_API}.CONSUMER.CREATE.{consumer}.>",
            f"{JS_API}.CONSUMER.DURABLE.CREATE.{consumer}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{consumer}",
            f"{JS_API}.CONSUMER.DELETE.{consumer}",
            f"$JS.ACK.{consumer}.>",
        ]
    )


def kv_stream(bucket: str) -> str:
    return f"KV_{bucket}"


def read_bucket(bucket: str) -> Grants:
    """Get, list and watch every key of a KV bucket."""
    return read_stream(kv_stream(bucket))


def write_bucket(bucket: str, keys: Iterable[str] = (">",)) -> Grants:
    """Put, create, update and delete ``keys`` of a KV bucket (subject patterns; default all),
    creating the bucket when it is missing."""
    return (
        read_bucket(bucket)
        | create_stream(kv_stream(bucket))
        | Grants.of(publish=[f"$KV.{bucket}.{key}" for key in keys])
    )


def administer_jetstream() -> Grants:
    """Every JetStream operation on every stream and consumer (the operator)."""
    return Grants.of(publish=[f"{JS_API}.>", "$JS.ACK.>", "$JS.FC.>", "$KV.>"])

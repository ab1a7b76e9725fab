"""Bus messages are closed and immutable; interface declarations are checked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agentbus.interfaces.error_reply import (
    ERROR_HEADER,
    SERVICE_ERROR_CODE_HEADER,
    SERVICE_ERROR_HEADER,
    ErrorCode,
    ErrorReply,
    status_of,
)
from agentbus.interfaces.errors import RegistryError, VersionError
from agentbus.interfaces.message import (
    BusMessage,
    Interface,
    InterfaceKind,
    event_interface,
    request_interface,
    stream_interface,
)
from agentbus.interfaces.semver import Version


class Ask(BusMessage):
    question: str
    limit: int = 10


class Answer(BusMessage):
    text: str


def test_messages_reject_unknown_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        Ask(question="q", surprise=1)  # type: ignore[call-arg]
    assert caught.value.errors()[0]["type"] == "extra_forbidden"

    with pytest.raises(ValidationError, match=r"extra_forbidden|Extra inputs"):
        Ask.model_validate_json('{"question": "q", "surprise": 1}')


def test_messages_are_immutable() -> None:
    ask = Ask(question="q")
    with pytest.raises(ValidationError, match="frozen"):
        ask.question = "other"  # type: ignore[misc]


def test_messages_validate_types() -> None:
    with pytest.raises(ValidationError):
        Ask.model_validate_json('{"question": "q", "limit": "many"}')
    assert Ask.model_validate_json('{"question": "q"}') == Ask(question="q", limit=10)


def test_request_interface_declaration() -> None:
    ask = request_interface(
        "model.language.generate", "1.2.0", request=Ask, reply=Answer, description="Ask."
    )

    assert ask.kind is InterfaceKind.REQUEST
    assert ask.version == Version(1, 2, 0)
    assert ask.key == "model.language.generate@1.2.0"
    assert ask.domain == "model"
    assert (ask.message, ask.reply) == (Ask, Answer)


def test_event_and_stream_declarations() -> None:
    told = event_interface("task.told", "0.1.0", payload=Ask)
    chunks = stream_interface("model.language.stream", "1.0.0", request=Ask, chunk=Answer)

    assert told.kind is InterfaceKind.EVENT
    assert told.reply is None
    assert chunks.kind is InterfaceKind.STREAM
    assert chunks.reply is Answer


@pytest.mark.parametrize(
    "name",
    ["single", "Model.language", "model..x", "model.", ".model", "model.lang uage", "1model.x",
     "model.1x", "model.x*"],
)  # fmt: skip
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(RegistryError, match="invalid interface name"):
        request_interface(name, "1.0.0", request=Ask, reply=Answer)


@pytest.mark.parametrize("name", ["a.b", "model.language.generate", "my-domain.do_it.v2x"])
def test_valid_names(name: str) -> None:
    assert request_interface(name, "1.0.0", request=Ask, reply=Answer).name == name


def test_event_cannot_have_a_reply() -> None:
    with pytest.raises(RegistryError, match="cannot declare a reply"):
        Interface("a.b", Version(1, 0, 0), InterfaceKind.EVENT, Ask, Answer)


@pytest.mark.parametrize("kind", [InterfaceKind.REQUEST, InterfaceKind.STREAM])
def test_request_and_stream_need_a_reply(kind: InterfaceKind) -> None:
    with pytest.raises(RegistryError, match="needs a reply model"):
        Interface("a.b", Version(1, 0, 0), kind, Ask, None)


def test_version_must_be_semver() -> None:
    with pytest.raises(VersionError):
        request_interface("a.b", "1.0", request=Ask, reply=Answer)


def test_json_schema_document() -> None:
    document = request_interface(
        "a.b", "1.0.0", request=Ask, reply=Answer, description="d"
    ).json_schema()

    assert {k: document[k] for k in ("interface", "version", "kind", "description")} == {
        "interface": "a.b",
        "version": "1.0.0",
        "kind": "request",
        "description": "d",
    }
    assert document["message"]["additionalProperties"] is False
    assert document["message"]["required"] == ["question"]
    assert document["reply"]["title"] == "Answer"
    assert "reply" not in event_interface("a.c", "1.0.0", payload=Ask).json_schema()


# -- error replies --------------------------------------------------------------------------------


def test_error_reply_headers_and_status() -> None:
    reply = ErrorReply.of(ErrorCode.SCHEMA_VIOLATION, "bad\r\nthing", errors=[{"loc": "x"}])

    assert reply.code == "schema_violation"
    assert reply.details == {"errors": [{"loc": "x"}]}
    assert reply.headers() == {
        ERROR_HEADER: "schema_violation",
        SERVICE_ERROR_HEADER: "bad  thing",
        SERVICE_ERROR_CODE_HEADER: "400",
    }


@pytest.mark.parametrize(
    ("code", "status"),
    [("bad_json", 400), ("not_found", 404), ("payload_too_large", 413), ("internal", 500),
     ("unavailable", 503), ("timeout", 504), ("made_up", 500)],
)  # fmt: skip
def test_status_of(code: str, status: int) -> None:
    assert status_of(code) == status


def test_every_error_code_has_a_status() -> None:
    assert all(100 <= status_of(code) < 600 for code in ErrorCode)

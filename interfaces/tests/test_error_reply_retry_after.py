"""``retry_after`` is optional and invisible when unset: older receivers read every reply."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from agentbus.interfaces.error_reply import ErrorCode, ErrorReply, status_of


def test_an_error_reply_without_retry_after_has_the_old_shape() -> None:
    reply = ErrorReply.of(ErrorCode.UNAVAILABLE, "stopping; retry", exception="X")
    body = json.loads(reply.model_dump_json())
    assert body == {
        "code": "unavailable",
        "message": "stopping; retry",
        "details": {"exception": "X"},
    }


def test_overloaded_carries_its_hint_and_reads_back() -> None:
    reply = ErrorReply(code=ErrorCode.OVERLOADED, message="full; retry", retry_after=0.25)
    raw = reply.model_dump_json()
    assert json.loads(raw)["retry_after"] == 0.25
    assert ErrorReply.model_validate_json(raw).retry_after == 0.25
    assert status_of(ErrorCode.OVERLOADED) == 503


def test_a_negative_hint_is_refused() -> None:
    with pytest.raises(ValidationError):
        ErrorReply(code=ErrorCode.OVERLOADED, message="full", retry_after=-1)

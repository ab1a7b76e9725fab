"""One way to explain a pydantic ``ValidationError``: to a person, and as a ``schema_violation``.

Every front that validates input (a request endpoint, a tool's arguments, a
workflow's input, a config file, a CLI payload) says the same thing the same way:
the first problem as ``location: message``, how many more there are, and, on the
bus, the first twenty as ``details.errors``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agentbus.interfaces.error_reply import ErrorCode, ErrorReply

MAX_PROBLEMS = 20
"""How many problems an error reply lists at most."""


def problems(exc: ValidationError) -> list[dict[str, str]]:
    """The first :data:`MAX_PROBLEMS` problems as ``{"loc", "msg", "type"}`` (no input echoed)."""
    return [
        {"loc": ".".join(str(p) for p in e["loc"]) or "(root)", "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_input=False, include_context=False)[
            :MAX_PROBLEMS
        ]
    ]


def explain(exc: ValidationError) -> str:
    """``"loc: msg"`` of the first problem, and ``" (and N more)"`` when there are more."""
    first = problems(exc)[0]
    more = exc.error_count() - 1
    return f"{first['loc']}: {first['msg']}" + (f" (and {more} more)" if more > 0 else "")


def is_bad_json(exc: ValidationError) -> bool:
    """The input was not JSON at all (as opposed to JSON of the wrong shape)."""
    return any(e["type"] == "json_invalid" for e in exc.errors(include_url=False))


def schema_violation(exc: ValidationError, what: str, **details: Any) -> ErrorReply:
    """The ``schema_violation`` reply for ``exc``: ``"<what>: <explain(exc)>"``, with the
    problems in ``details.errors`` (``what`` names the input, e.g. "the request does not
    match GreetRequest (greet@1.0.0)")."""
    return ErrorReply.of(
        ErrorCode.SCHEMA_VIOLATION, f"{what}: {explain(exc)}", errors=problems(exc), **details
    )

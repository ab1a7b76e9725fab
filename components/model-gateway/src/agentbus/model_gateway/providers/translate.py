"""Helpers both SDK adapters share: Retry-After, tool arguments, malformed and cut-off
responses."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import httpx
from pydantic import JsonValue

from agentbus.model_gateway.providers.base import ProviderError


def status_error(
    provider: str, status: int, message: str, response: httpx.Response | None
) -> ProviderError:
    """An HTTP error status as the kind the router acts on: retry, fall back, or report.

    429 is ``rate_limited`` (with ``Retry-After``); 401/403 ``auth``; 5xx, 408, 409 and a
    status below 400 (an ``error`` event inside a 200 stream, e.g. Anthropic's overloaded)
    are ``server``; other 4xx are the request's fault, ``bad_request``.
    """
    detail = f"{provider} answered HTTP {status}: {message}"
    if status == 429:
        return ProviderError(
            "rate_limited", detail, status=status, retry_after=retry_after(response)
        )
    if status in (401, 403):
        return ProviderError("auth", detail, status=status)
    if status < 400 or status >= 500 or status in (408, 409):
        return ProviderError("server", detail, status=status, retry_after=retry_after(response))
    return ProviderError("bad_request", detail, status=status)


def cut_off(provider: str) -> ProviderError:
    """A stream whose body ended before the provider said the answer was finished: the
    connection or a proxy dropped it mid-answer. Retryable (before anything was passed on)."""
    return ProviderError(
        "incomplete",
        f"{provider} ended the stream before the answer was finished (no finish reason)",
    )


def retry_after(response: httpx.Response | None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if response is None:
        return None
    headers = response.headers
    if (millis := headers.get("retry-after-ms")) is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_arguments(provider: str, text: str | None) -> dict[str, JsonValue]:
    """A tool call's arguments: a JSON object, or a malformed-response error."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProviderError(
            "malformed", f"{provider} sent tool-call arguments that are not JSON: {exc.msg}"
        ) from exc
    if not isinstance(value, dict):
        raise ProviderError(
            "malformed", f"{provider} sent tool-call arguments that are not a JSON object"
        )
    return value


@contextlib.contextmanager
def malformed_response(provider: str) -> Iterator[None]:
    """Reading a response that lacks what the protocol promises is a ``malformed`` error."""
    try:
        yield
    except ProviderError:
        raise
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise ProviderError(
            "malformed",
            f"{provider} sent a response that does not follow its protocol "
            f"({type(exc).__name__}: {exc})",
        ) from exc

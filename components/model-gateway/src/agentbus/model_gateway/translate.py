"""Helpers both SDK adapters share: Retry-After, tool arguments, malformed responses."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import httpx
from pydantic import JsonValue

from agentbus.model_gateway.provider import ProviderError


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

"""The providers' own rules, without HTTP: Retry-After parsing and the retry policy."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx

from agentbus.model_gateway.providers.base import ProviderError
from agentbus.model_gateway.providers.limits_and_retries import RetryPolicy
from agentbus.model_gateway.providers.translate import retry_after


def _response(**headers: str) -> httpx.Response:
    return httpx.Response(429, headers=headers)


def test_retry_after_in_seconds_milliseconds_and_dates() -> None:
    assert retry_after(_response(**{"Retry-After": "2"})) == 2.0
    assert retry_after(_response(**{"retry-after-ms": "250"})) == 0.25
    in_ten = retry_after(_response(**{"Retry-After": formatdate(time.time() + 10, usegmt=True)}))
    assert in_ten is not None
    assert 8 <= in_ten <= 11
    assert retry_after(_response(**{"Retry-After": "soon"})) is None
    assert retry_after(_response()) is None


def test_retry_policy_backs_off_exponentially_and_honours_retry_after() -> None:
    policy = RetryPolicy(retries=3, backoff=1.0, max_backoff=3.0)
    server = ProviderError("server", "boom")

    delays = [policy.delay(server, attempt) for attempt in range(4)]

    assert delays[3] is None
    assert [
        d is not None and low * 0.8 <= d <= low
        for d, low in zip(delays[:3], [1, 2, 3], strict=True)
    ] == [True] * 3
    assert policy.delay(ProviderError("rate_limited", "x", retry_after=2.5), 0) == 2.5
    assert policy.delay(ProviderError("rate_limited", "x", retry_after=60), 0) is None
    assert policy.delay(ProviderError("bad_request", "x"), 0) is None

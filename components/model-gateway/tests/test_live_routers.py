"""LiveRouters on its own: a retired router stays open until its last request leaves."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from agentbus.framework.testing import eventually
from agentbus.model_gateway.config import ModelsConfig
from agentbus.model_gateway.live_routers import LiveRouters
from agentbus.model_gateway.metering import GatewayMetrics
from agentbus.model_gateway.router import Router


async def test_a_retired_router_is_closed_when_its_last_request_leaves() -> None:
    metrics = GatewayMetrics(CollectorRegistry())
    first, second = Router(ModelsConfig(), metrics), Router(ModelsConfig(), metrics)
    routers = LiveRouters(first)

    async def failing_request() -> None:
        with routers.use():
            await routers.replace(second)
            raise RuntimeError("a request failing")

    with routers.use() as running:
        with pytest.raises(RuntimeError, match="a request failing"):
            await failing_request()
        assert running is first
        assert not first.closed, "closed while a request still used it"
        with routers.use() as new:
            assert new is second
    await eventually(lambda: first.closed, what="the retired router closed")

    assert routers.retired() == []
    assert not second.closed
    await routers.aclose()
    assert second.closed

"""Which NATS server a lost connection tries next, and after how long: with jitter.

nats-py 2.16 has no jitter option; its ``reconnect_to_server_handler`` chooses the
server and the delay instead. Ours tries every server of the pool once at once (a
cluster node that is up takes over without waiting), then waits ``wait`` seconds
±50 % between tries, so that the clients of a lost node do not all knock at the
same instant.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from nats.aio.client import Server

JITTER = 0.5
"""The delay is ``wait`` times a random factor in ``[1 - JITTER, 1 + JITTER]``."""

Handler = Callable[[list[Server], dict[str, Any]], tuple[Server | None, float]]


def jittered_reconnect(wait: float) -> Handler:
    """A ``reconnect_to_server_handler``: the least-tried server, after a jittered pause
    once every server has failed at least once."""

    def choose(servers: list[Server], _info: dict[str, Any]) -> tuple[Server | None, float]:
        if not servers:
            return None, 0.0
        fewest = min(server.reconnects for server in servers)
        candidates = [server for server in servers if server.reconnects == fewest]
        chosen = random.choice(candidates)  # noqa: S311 - spreading load, not security
        if fewest == 0:
            return chosen, 0.0
        return chosen, wait * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311

    return choose

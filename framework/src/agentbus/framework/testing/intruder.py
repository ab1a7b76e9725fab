"""A plain nats-py client holding one identity's key, as an attacker with that key would be,
and a wait for the server's refusal: for tests of least privilege."""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats
from nats.aio.client import Client


class Intruder:
    """A raw connection as one identity (no agentbus ``Bus``: nothing checks declarations
    before the server does), recording the server's permission refusals."""

    def __init__(self, nc: Client, refusals: list[Exception]) -> None:
        self.nc = nc
        self.refusals = refusals

    @classmethod
    async def connect(cls, url: str, seed_file: Path) -> Intruder:
        refusals: list[Exception] = []

        async def on_error(exc: Exception) -> None:
            refusals.append(exc)

        nc = await nats.connect(
            url, nkeys_seed=str(seed_file), error_cb=on_error, allow_reconnect=False
        )
        return cls(nc, refusals)

    async def publish(self, subject: str, payload: bytes = b"") -> None:
        await self.nc.publish(subject, payload)

    async def refused(self, subject: str, timeout: float = 2.0) -> None:
        """Wait until the server refused ``subject`` (nats-py reports it lower-cased)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not any(subject.lower() in str(e).lower() for e in self.refusals):
            if loop.time() > deadline:
                raise AssertionError(
                    f"the server did not refuse {subject} within {timeout:g}s; "
                    f"refusals: {self.refusals}"
                )
            await self.nc.flush()
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        await self.nc.close()

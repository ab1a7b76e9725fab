"""The live router (the one new requests use), and retired ones kept open for the requests
still on them: how a ``models.toml`` reload swaps routers under running requests.

A reload builds a new :class:`~.router.Router` and :meth:`LiveRouters.replace` swaps it
in. Each request takes a router with :meth:`LiveRouters.use` and keeps it to its end, so
a running request or stream never sees its configuration change; a retired router's HTTP
clients are closed once its last request has left.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from agentbus.model_gateway.router import Router


class LiveRouters:
    """The current router plus, per router, how many requests are using it."""

    def __init__(self, router: Router) -> None:
        self.current = router
        self._users: dict[Router, int] = {router: 0}
        self._closing: set[asyncio.Task[None]] = set()
        self._shut = False

    @contextlib.contextmanager
    def use(self) -> Iterator[Router]:
        """The current router, held for the duration of one request."""
        router = self.current
        self._users[router] += 1
        try:
            yield router
        finally:
            self._release(router)

    def retired(self) -> list[Router]:
        """Replaced routers not closed yet: requests that started on them still run."""
        return [router for router in self._users if router is not self.current]

    async def replace(self, router: Router) -> None:
        """Send new requests to ``router``; close the old one now if nothing uses it."""
        old, self.current = self.current, router
        self._users[router] = 0
        if self._users[old] == 0:
            await old.aclose()
            del self._users[old]  # after: if cancelled meanwhile, aclose() still closes it

    async def aclose(self) -> None:
        """Close every router, current and retired (at shutdown, once requests have ended)."""
        self._shut = True
        for router in list(self._users):
            await router.aclose()
        if self._closing:
            await asyncio.wait(set(self._closing))

    def _release(self, router: Router) -> None:
        # Synchronous, so it also runs in a cancelled request or a stream closed early;
        # the close itself is a task of its own.
        self._users[router] -= 1
        if router is self.current or self._users[router] or self._shut:
            return
        del self._users[router]
        task = asyncio.get_running_loop().create_task(router.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

"""Talking to deployed instances: health, serving state, contract, smoke, counters.

Everything goes through the NATS service protocol (``$SRV.PING|INFO|STATS.<service>.<instance>``)
and the instances' direct subjects, so it works for any backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentbus.framework.bus import Bus
from agentbus.framework.deploy.roles import SERVING_KEY
from agentbus.framework.deploy.state import DeploymentRecord
from agentbus.framework.errors import BusError, DeployError
from agentbus.framework.wire import error_from
from agentbus.interfaces.subjects import as_caller, direct_subject


@dataclass(frozen=True, slots=True)
class SmokeRequest:
    """A request sent directly to each new instance before it may be promoted."""

    interface: str
    major: int
    payload: Any
    """The request body, as JSON-able data."""
    expect_error: str | None = None
    """``None``: a success reply is expected; else this error code."""
    timeout: float = 5.0

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> SmokeRequest:
        """``{"interface": "hello.greet", "major": 1, "payload": {...}, "expect_error": null}``."""
        try:
            return cls(
                interface=str(document["interface"]),
                major=int(document.get("major", 1)),
                payload=document["payload"],
                expect_error=document.get("expect_error"),
                timeout=float(document.get("timeout", 5.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeployError(f"a smoke request needs interface and payload: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Counts:
    """Requests and errors, summed over endpoints (and instances)."""

    requests: int = 0
    errors: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.requests + other.requests, self.errors + other.errors)

    def __sub__(self, other: Counts) -> Counts:
        return Counts(self.requests - other.requests, self.errors - other.errors)

    @property
    def rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class Probe:
    """Asks instances of a service about themselves over the bus."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def ping(self, service: str, instance: str, *, timeout: float) -> dict[str, Any]:
        try:
            msg = await self.bus.request_raw(
                f"$SRV.PING.{service}.{instance}", b"", timeout=timeout
            )
        except BusError as exc:
            raise DeployError(f"{instance} does not answer $SRV.PING: {exc}") from exc
        document: dict[str, Any] = json.loads(msg.data)
        return document

    async def wait_serving(
        self, service: str, instances: Sequence[str], *, serving: bool, timeout: float
    ) -> None:
        """Until each instance reports it joined (or left) the production queue group."""
        wanted = "true" if serving else "false"
        deadline = time.monotonic() + timeout
        for instance in instances:
            while True:
                try:
                    ping = await self.ping(service, instance, timeout=0.5)
                    if (ping.get("metadata") or {}).get(SERVING_KEY) == wanted:
                        break
                except DeployError:
                    if not serving:
                        break  # gone: not serving either
                if time.monotonic() > deadline:
                    verb = "join" if serving else "leave"
                    raise DeployError(f"{instance} did not {verb} within {timeout:g}s")
                await asyncio.sleep(0.02)

    async def info(self, service: str, instance: str) -> dict[str, Any]:
        try:
            msg = await self.bus.request_raw(f"$SRV.INFO.{service}.{instance}", b"", timeout=2.0)
        except BusError as exc:
            raise DeployError(f"{instance} does not answer $SRV.INFO: {exc}") from exc
        document: dict[str, Any] = json.loads(msg.data)
        return document

    async def check_contract(
        self, service: str, instances: Sequence[str], active: DeploymentRecord
    ) -> None:
        """The new version serves every interface major the active one serves."""
        served: set[tuple[str, str]] | None = None
        for instance in active.instances:
            with contextlib.suppress(DeployError):
                served = _interfaces(await self.info(active.service or service, instance))
                break
        if served is None:
            return  # the active version does not answer: nothing to compare with
        for instance in instances:
            missing = served - _interfaces(await self.info(service, instance))
            if missing:
                names = ", ".join(f"{name} v{major}" for name, major in sorted(missing))
                raise DeployError(f"{instance} no longer serves {names}")

    async def smoke(self, instance: str, request: SmokeRequest) -> None:
        subject = as_caller(
            direct_subject(instance, request.interface, request.major), self.bus.identity
        )
        what = f"smoke {request.interface} v{request.major} on {instance}"
        try:
            msg = await self.bus.request_raw(
                subject, json.dumps(request.payload).encode(), timeout=request.timeout, what=what
            )
        except BusError as exc:
            raise DeployError(f"{what}: {exc}") from exc
        error = error_from(msg)
        got = error.code if error is not None else None
        if got != request.expect_error:
            detail = f"{error.code}: {error.message}" if error is not None else "a success reply"
            expected = request.expect_error or "success"
            raise DeployError(f"{what}: expected {expected}, got {detail}")

    async def counts(self, service: str, instances: Sequence[str]) -> Counts:
        total = Counts()
        for instance in instances:
            try:
                msg = await self.bus.request_raw(
                    f"$SRV.STATS.{service}.{instance}", b"", timeout=2.0
                )
            except BusError as exc:
                raise DeployError(f"{instance} does not answer $SRV.STATS: {exc}") from exc
            stats = json.loads(msg.data)
            for endpoint in stats.get("endpoints") or ():
                total += Counts(
                    int(endpoint.get("num_requests", 0)), int(endpoint.get("num_errors", 0))
                )
        return total


def _interfaces(info: Mapping[str, Any]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for endpoint in info.get("endpoints") or ():
        metadata = endpoint.get("metadata") or {}
        name, version = metadata.get("interface"), metadata.get("interface_version")
        if name and version:
            found.add((str(name), str(version).split(".", 1)[0]))
    return found

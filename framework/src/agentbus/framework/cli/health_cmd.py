"""``agentbus health``: is this service (or the NATS server) answering? For container healthchecks.

What is checked, in order of precedence:

* ``--instance`` (or ``AGENTBUS_HEALTH_INSTANCE``, else ``AGENTBUS_INSTANCE``): that one
  instance answers ``$SRV.PING`` (``$SRV.PING.<service>.<instance>`` when the service is
  known too). In a container this is the local service: the image's entrypoint sets
  ``AGENTBUS_INSTANCE`` to the container's hostname, and the healthcheck runs through the
  same entrypoint, so every replica of a scaled service checks itself, not its siblings.
* ``--service`` (or ``AGENTBUS_HEALTH_SERVICE``) alone: some instance of it answers.
* neither: the NATS server answers and has JetStream (the healthcheck of the NATS container).

``--check`` prints nothing and exits 0 (healthy) or 1; without it the answer is printed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from agentbus.framework.bus import Bus
from agentbus.framework.cli.common import console, err_console, options, run
from agentbus.interfaces.metadata import Source, new_id


async def ping(
    bus: Bus, service: str | None, instance: str | None, timeout: float
) -> dict[str, Any]:
    """The ``$SRV.PING`` answer of the instance (or service) asked for; ``TimeoutError`` if none."""
    subject = "$SRV.PING"
    if service:
        subject += f".{service}" + (f".{instance}" if instance else "")
    inbox = bus.new_inbox()
    subscription = await bus.nc.subscribe(inbox)
    try:
        await bus.nc.publish(subject, b"", reply=inbox)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            msg = await subscription.next_msg(timeout=left)
            try:
                answer = json.loads(msg.data)
            except ValueError:
                continue
            if isinstance(answer, dict) and (instance is None or answer.get("id") == instance):
                return answer
        raise TimeoutError
    finally:
        await subscription.unsubscribe()


async def nats_health(bus: Bus) -> dict[str, Any]:
    """The NATS server's identity and JetStream account usage (raises when JetStream is off)."""
    account = await bus.js.account_info()
    return {
        "nats": str(bus.nc.connected_server_version),
        "jetstream": {"streams": account.streams, "consumers": account.consumers},
    }


def health(
    ctx: typer.Context,
    check: Annotated[
        bool, typer.Option("--check", help="Print nothing; exit 0 when healthy, 1 otherwise.")
    ] = False,
    service: Annotated[
        str | None,
        typer.Option(
            "--service", "-s", envvar="AGENTBUS_HEALTH_SERVICE", help="Service name to ping."
        ),
    ] = None,
    instance: Annotated[
        str | None,
        typer.Option(
            "--instance",
            "-i",
            envvar=["AGENTBUS_HEALTH_INSTANCE", "AGENTBUS_INSTANCE"],
            help="Instance id to ping (default: this container's, AGENTBUS_INSTANCE).",
        ),
    ] = None,
    nats_only: Annotated[
        bool,
        typer.Option("--nats", help="Check the NATS server and JetStream only, not a service."),
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 3.0,
) -> None:
    """Check that a service instance answers $SRV.PING, or that NATS with JetStream is up."""
    if nats_only:
        service = instance = None

    async def work() -> dict[str, Any]:
        settings = options(ctx).settings()
        async with Bus(settings, Source("health", new_id()[:8])) as bus:
            if service is None and instance is None:
                return await asyncio.wait_for(nats_health(bus), timeout)
            return await ping(bus, service, instance, timeout)

    async def bounded() -> dict[str, Any]:
        # Connecting has its own retries; the whole check still ends within the budget.
        return await asyncio.wait_for(work(), timeout + 5)

    target = (
        "NATS"
        if service is None and instance is None
        else "/".join(p for p in (service, instance) if p)
    )
    try:
        answer = run(bounded())
    except Exception as exc:  # any failure is "unhealthy"; the reason is printed without --check
        if not check:
            reason = "no answer" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            err_console.print(f"[red]unhealthy:[/] {target}: {reason}", markup=True)
        raise typer.Exit(1) from None
    if not check:
        console.print(json.dumps({"healthy": target, **answer}), markup=False, soft_wrap=True)


__all__ = ["health", "nats_health", "ping"]

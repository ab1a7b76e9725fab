"""Blue/green promotion and rollback of a queue-group service.

Promotion, in order (any failure before the flip tears the new version down and
leaves the active one untouched):

1. start the new version under the inactive color (its own instances, direct
   subjects only: it takes no production traffic);
2. health: every instance answers ``$SRV.PING.<service>.<instance>``;
3. contract: it serves every interface major the active version serves;
4. smoke: the given requests, sent to each instance's direct subjects;
5. flip: compare-and-set the record to the new color with ``serving`` both
   colors; wait until every new instance reports it joined the queue group;
6. compare-and-set ``serving`` to the new color alone: the old instances leave
   by draining (what they hold is answered); they keep running;
7. bake: for ``bake_seconds``, the new version's error rate (from ``$SRV.STATS``)
   is compared with the old version's over its whole serving period; a
   regression, or an instance that stops answering, rolls back;
8. the bake passed: the old version is stopped.

Rollback is the same flip the other way: the old color rejoins before the new
one leaves, so a request always has a subscriber.

The record read at the start is untrusted: before either starts anything, the
``runtime`` of the active and the previous version go through the backend's
:meth:`~Backend.check_runtime`, so a tampered record (a worktree outside the deploy
folder, a process the backend did not start) fails the command and nothing is
stopped or deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from agentbus.framework.bus import Bus
from agentbus.framework.deploy.backends import Backend, Release, Running
from agentbus.framework.deploy.policy import Outcome, PromotionPolicy, PromotionResult
from agentbus.framework.deploy.probe import Counts, Probe, SmokeRequest
from agentbus.framework.deploy.state import (
    Color,
    DeployedVersion,
    DeploymentRecord,
    DeploymentStore,
    Versioned,
    other,
)
from agentbus.framework.errors import DeployError, DeploymentConflict

log = logging.getLogger("agentbus.deploy")

Log = Callable[[str], None]
"""Progress lines (the CLI prints them; the default logs them)."""


async def promote(
    bus: Bus,
    backend: Backend,
    release: Release,
    *,
    smoke: Sequence[SmokeRequest] = (),
    policy: PromotionPolicy | None = None,
    progress: Log | None = None,
) -> PromotionResult:
    """Deploy ``release`` blue/green; return once promoted (bake passed), rejected or rolled back.

    Raises :class:`DeployError` only when the deployment is in a state it cannot
    start from (a flip already in progress, a record whose runtimes the backend
    refuses); a failing new version is a result.
    """
    return await Promoter(bus, backend, policy, progress=progress).promote(release, smoke)


async def rollback(
    bus: Bus,
    backend: Backend,
    component: str,
    *,
    policy: PromotionPolicy | None = None,
    env: Mapping[str, str] | None = None,
    progress: Log | None = None,
) -> DeploymentRecord:
    """Make the previous version active again (restarting it if it was stopped)."""
    return await Promoter(bus, backend, policy, progress=progress).rollback(component, env=env)


class Promoter:
    """Runs promotions and rollbacks of components through one backend."""

    def __init__(
        self,
        bus: Bus,
        backend: Backend,
        policy: PromotionPolicy | None = None,
        *,
        progress: Log | None = None,
    ) -> None:
        self.bus = bus
        self.probe = Probe(bus)
        self.backend = backend
        self.policy = policy or PromotionPolicy()
        self._progress = progress or log.info

    def say(self, line: str) -> None:
        self._progress(line)

    # -- promotion ---------------------------------------------------------------------------

    async def promote(
        self, release: Release, smoke: Sequence[SmokeRequest] = ()
    ) -> PromotionResult:
        store = await DeploymentStore.open(self.bus.js)
        current = await store.get(release.component)
        active = current.record if current is not None else None
        if active is not None and len(active.serving_colors()) > 1:
            raise DeployError(
                f"a flip of {release.component} is in progress (serving "
                f"{sorted(active.serving_colors())}); wait for it or run "
                f"`agentbus deploy rollback {release.component}`"
            )
        color: Color = other(active.color) if active is not None else "blue"
        if active is not None:
            self._check_record(release.component, active)
        if active is not None and active.previous is not None and active.previous.runtime:
            self.say(f"stopping the retired {active.previous.color} {active.previous.version}")
            await self._stop(release.component, active.previous.runtime)

        self.say(f"starting {release.component} at {release.commit} as {color}")
        running = await self.backend.start(release, color)
        version = running.version
        try:
            await self._check(running, active, smoke)
            baseline = await self._baseline(release, active)
            start = await self.probe.counts(release.service_name, running.instances)
            flipped = await self._flip(store, current, running)
        except DeployError as exc:
            self.say(f"rejected {version}: {exc}; stopping {color}")
            await self._stop(release.component, running.runtime)
            return PromotionResult(
                Outcome.REJECTED, release.component, version, running.commit, str(exc), active
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await self._stop(running.release.component, running.runtime, grace=0)
            raise
        if active is None:
            self.say(f"{release.component} {version} is active (first deployment)")
            return PromotionResult(
                Outcome.PROMOTED, release.component, version, running.commit, "", flipped.record
            )
        result = PromotionResult(
            Outcome.PROMOTED, release.component, version, running.commit, baseline=baseline
        )
        try:
            return await self._bake_and_finish(store, flipped, running, active, result, start)
        except DeploymentConflict as exc:
            return replace(result, outcome=Outcome.SUPERSEDED, reason=str(exc))

    async def _check(
        self, running: Running, active: DeploymentRecord | None, smoke: Sequence[SmokeRequest]
    ) -> None:
        service = running.release.service_name
        await self._wait_healthy(service, running)
        self.say(f"healthy: {', '.join(running.instances)}")
        if active is not None:
            await self.probe.check_contract(service, running.instances, active)
        for instance in running.instances:
            for request in smoke:
                await self.probe.smoke(instance, request)
        self.say(f"smoke passed ({len(smoke)} request(s) per instance)")

    async def _flip(
        self, store: DeploymentStore, current: Versioned | None, running: Running
    ) -> Versioned:
        active = current.record if current is not None else None
        serving: tuple[Color, ...] = (
            (active.color, running.color) if active is not None else (running.color,)
        )
        record = DeploymentRecord(
            version=running.version,
            commit=running.commit,
            color=running.color,
            target=running.release.target,
            service=running.release.service_name,
            instances=running.instances,
            runtime=running.runtime,
            serving=serving,
            previous=(
                active.deployed_version().model_copy(
                    update={"service": active.service or running.release.service_name}
                )
                if active is not None
                else None
            ),
        )
        flipped = await store.put(
            running.release.component, record, revision=current.revision if current else None
        )
        self.say(f"flipped {running.release.component} to {running.color} {running.version}")
        try:
            await self._wait_serving(record.service, record.instances, serving=True)
        except DeployError:
            if active is None:  # nothing served before: forget the record again
                await store.delete(running.release.component, revision=flipped.revision)
                raise
            # The old color still serves: put the record back as it was, then reject.
            await self._rollback_flip(
                store, running.release.component, flipped, "the new version did not join in time"
            )
            raise
        return flipped

    async def _bake_and_finish(
        self,
        store: DeploymentStore,
        flipped: Versioned,
        running: Running,
        outgoing: DeploymentRecord,
        result: PromotionResult,
        start: Counts,
    ) -> PromotionResult:
        component = running.release.component
        service = outgoing.service or running.release.service_name
        outgoing = outgoing.model_copy(update={"service": service})
        only_new = flipped.record.model_copy(update={"serving": (running.color,)})
        now = await store.put(component, only_new, revision=flipped.revision)
        try:
            await self._wait_serving(outgoing.service, outgoing.instances, serving=False)
        except DeployError as exc:  # it still serves beside the new one: harmless, go on
            self.say(f"warning: {exc}")
        self.say(
            f"{outgoing.color} {outgoing.version} left (drained); "
            f"baking {self.policy.bake_seconds:g}s"
        )
        verdict, observed = await self._bake(store, now, running, result.baseline, start)
        result = replace(result, observed=observed)
        if verdict is Outcome.SUPERSEDED:
            return replace(
                result, outcome=Outcome.SUPERSEDED, reason="the record changed during the bake"
            )
        if verdict is not None:
            self.say(f"regression: {verdict}; rolling back to {outgoing.color} {outgoing.version}")
            record = await self._rollback_flip(store, component, now, verdict)
            return replace(result, outcome=Outcome.ROLLED_BACK, reason=verdict, record=record)
        self.say(
            f"bake passed ({observed.errors}/{observed.requests} errors); stopping {outgoing.color}"
        )
        if outgoing.runtime:
            await self._stop(component, outgoing.runtime)
        retired = now.record.model_copy(
            update={"previous": outgoing.deployed_version().model_copy(update={"runtime": None})}
        )
        final = await store.put(component, retired, revision=now.revision)
        return replace(result, record=final.record)

    async def _baseline(self, release: Release, active: DeploymentRecord | None) -> Counts:
        """The active version's requests and errors so far (zero when it does not answer)."""
        if active is None:
            return Counts()
        try:
            return await self.probe.counts(active.service or release.service_name, active.instances)
        except DeployError as exc:
            self.say(f"warning: no baseline ({exc}); judging against 0% errors")
            return Counts()

    async def _bake(
        self,
        store: DeploymentStore,
        now: Versioned,
        running: Running,
        baseline: Counts,
        start: Counts,
    ) -> tuple[str | Outcome | None, Counts]:
        """``None`` (passed), a regression's description, or ``SUPERSEDED``; and green's counts."""
        policy = self.policy
        deadline = time.monotonic() + policy.bake_seconds
        observed = Counts()
        while True:
            await asyncio.sleep(max(0.0, min(policy.check_interval, deadline - time.monotonic())))
            latest = await store.get(running.release.component)
            if latest is None or latest.revision != now.revision:
                return Outcome.SUPERSEDED, observed
            if not await self.backend.alive(running.runtime, component=running.release.component):
                return "an instance of the new version exited", observed
            try:
                observed = await self.probe.counts(now.record.service, now.record.instances) - start
            except DeployError as exc:
                return str(exc), observed
            if observed.requests >= policy.min_requests and (
                observed.rate > baseline.rate + policy.max_error_rate_increase
            ):
                return (
                    f"error rate {observed.rate:.1%} ({observed.errors}/{observed.requests}) "
                    f"against a baseline of {baseline.rate:.1%} "
                    f"({baseline.errors}/{baseline.requests})"
                ), observed
            if time.monotonic() >= deadline:
                return None, observed

    # -- rollback ----------------------------------------------------------------------------

    async def rollback(
        self, component: str, *, env: Mapping[str, str] | None = None
    ) -> DeploymentRecord:
        """Flip back to the previous version; restart it first when it was stopped."""
        store = await DeploymentStore.open(self.bus.js)
        current = await store.get(component)
        if current is None or current.record.previous is None:
            raise DeployError(f"{component} has no previous version to roll back to")
        previous = current.record.previous
        self._check_record(component, current.record)
        if not (previous.runtime and await self._answers(component, previous)):
            current = await self._restart(store, component, current, previous, env or {})
        self.say(f"rolling {component} back to {previous.version}")
        return await self._rollback_flip(store, component, current, "manual rollback")

    async def _answers(self, component: str, deployed: DeployedVersion) -> bool:
        if not deployed.runtime or not await self.backend.alive(
            deployed.runtime, component=component
        ):
            return False
        try:
            for instance in deployed.instances:
                await self.probe.ping(deployed.service, instance, timeout=1.0)
        except DeployError:
            return False
        return True

    async def _restart(
        self,
        store: DeploymentStore,
        component: str,
        current: Versioned,
        previous: DeployedVersion,
        env: Mapping[str, str],
    ) -> Versioned:
        active = current.record
        previous.check_restartable(component)
        release = Release(
            component=component,
            target=previous.target,
            commit=previous.commit,
            version=previous.version,
            service=previous.service or active.service,
            replicas=max(1, len(previous.instances)),
            env=dict(env),
        )
        color = other(active.color)
        self.say(f"the previous version is stopped; restarting {previous.version} as {color}")
        running = await self.backend.start(release, color)
        try:
            await self._wait_healthy(release.service_name, running)
            restarted = DeployedVersion(
                version=previous.version,
                commit=running.commit,
                color=color,
                target=release.target,
                service=release.service_name,
                instances=running.instances,
                runtime=running.runtime,
            )
            return await store.put(
                component,
                active.model_copy(update={"previous": restarted}),
                revision=current.revision,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await self._stop(running.release.component, running.runtime, grace=0)
            raise

    async def _rollback_flip(
        self, store: DeploymentStore, component: str, now: Versioned, reason: str
    ) -> DeploymentRecord:
        """Make ``now.record.previous`` active again: it rejoins, then the current one leaves."""
        current = now.record
        back = current.previous
        if back is None:
            raise DeployError(f"{component}: nothing to roll back to")
        record = DeploymentRecord(
            **back.model_dump(),
            serving=(current.color, back.color),
            previous=current.deployed_version(),
        )
        versioned = await store.put(component, record, revision=now.revision)
        await self._wait_serving(back.service, back.instances, serving=True)
        only_back = record.model_copy(update={"serving": (back.color,)})
        versioned = await store.put(component, only_back, revision=versioned.revision)
        with contextlib.suppress(DeployError):  # stopping below drains it anyway
            await self._wait_serving(current.service, current.instances, serving=False)
        if current.runtime:
            await self._stop(component, current.runtime)
        retired = only_back.model_copy(
            update={"previous": current.deployed_version().model_copy(update={"runtime": None})}
        )
        final = await store.put(component, retired, revision=versioned.revision)
        self.say(f"rolled back to {back.color} {back.version} ({reason})")
        return final.record

    # -- the record's runtimes -----------------------------------------------------------------

    def _check_record(self, component: str, record: DeploymentRecord) -> None:
        """Raise :class:`DeployError` unless the backend accepts every runtime in ``record``
        (read from the KV: anyone who can write the bucket wrote it)."""
        for deployed in (record, record.previous):
            if deployed is not None and deployed.runtime:
                self.backend.check_runtime(deployed.runtime, component=component)

    async def _stop(
        self, component: str, runtime: Mapping[str, Any], *, grace: float | None = None
    ) -> None:
        grace = self.policy.stop_grace if grace is None else grace
        await self.backend.stop(runtime, component=component, grace=grace)

    # -- talking to instances ----------------------------------------------------------------

    async def _wait_healthy(self, service: str, running: Running) -> None:
        deadline = time.monotonic() + self.policy.health_timeout
        for instance in running.instances:
            while True:
                if not await self.backend.alive(
                    running.runtime, component=running.release.component
                ):
                    logs = self.backend.where_logs(running, instance)
                    raise DeployError(
                        f"{instance} exited during start-up"
                        + (f"; its log: {logs}" if logs else " (see its log)")
                    )
                try:
                    await self.probe.ping(service, instance, timeout=0.5)
                    break
                except DeployError:
                    if time.monotonic() > deadline:
                        raise DeployError(
                            f"{instance} not healthy within {self.policy.health_timeout:g}s"
                        ) from None
                    await asyncio.sleep(0.1)

    async def _wait_serving(self, service: str, instances: Sequence[str], *, serving: bool) -> None:
        await self.probe.wait_serving(
            service, instances, serving=serving, timeout=self.policy.switch_timeout
        )

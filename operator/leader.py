"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

With ``AISRE_PEERING`` set, several replicas run and exactly one of them leads: it holds
the Lease, renews it every ``renew`` seconds, and is the only one that runs Kopf (and
with it detection, investigations and remediation). The others stand by: they read the
Lease every ``retry`` seconds and take it over when the holder released it (a clean
shutdown) or stopped renewing it for ``duration`` seconds (a crash).

As in client-go, expiry is judged by *this* replica's clock from the moment it last saw
the Lease change (its resourceVersion), never from the ``renewTime`` another node wrote,
so clock skew between nodes cannot hand the Lease to two replicas; every write carries
the resourceVersion it was decided from, so two candidates racing for an expired Lease
cannot both win (the loser gets 409 Conflict). A leader that could not renew for
``renew_deadline`` (< ``duration``) seconds steps down before anyone else may acquire.

The decisions are pure functions (``decide``, ``observe``, ``spec_for``); ``LeaderElector``
is the thin loop that reads and writes the Lease.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

log = structlog.get_logger("aisre.leader")

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"


def _seconds(env: Mapping[str, str], key: str, default: float) -> float:
    return float(env[key]) if env.get(key) else default


@dataclass(frozen=True)
class LeaseSettings:
    """Timing of the election; client-go's defaults for controllers, renewing every 5 s."""

    duration: float = 15.0  # leaseDurationSeconds: how long a silent holder keeps the Lease
    renew: float = 5.0  # the leader renews this often
    renew_deadline: float = 10.0  # the leader steps down when it could not renew for this long
    retry: float = 2.0  # a standby (or a leader whose renewal failed) tries again this often

    def __post_init__(self) -> None:
        if not 0 < self.renew <= self.renew_deadline < self.duration or self.retry <= 0:
            raise ValueError(f"need 0 < renew <= renew_deadline < duration and retry > 0: {self}")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LeaseSettings:
        return cls(
            duration=_seconds(env, "AISRE_LEADER_LEASE_SECONDS", cls.duration),
            renew=_seconds(env, "AISRE_LEADER_RENEW_SECONDS", cls.renew),
            renew_deadline=_seconds(env, "AISRE_LEADER_RENEW_DEADLINE_SECONDS", cls.renew_deadline),
            retry=_seconds(env, "AISRE_LEADER_RETRY_SECONDS", cls.retry),
        )


# --- pure decisions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """The Lease's spec, as far as the election reads it."""

    holder: str = ""
    duration: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0


def record_of(lease: Mapping[str, Any]) -> Record:
    spec = lease.get("spec") or {}
    return Record(
        holder=spec.get("holderIdentity") or "",
        duration=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


@dataclass(frozen=True)
class Observation:
    """The Lease's resourceVersion as last seen, and when (this replica's monotonic clock)."""

    version: str
    at: float


def observe(previous: Observation | None, version: str, now: float) -> Observation:
    """The clock restarts only when the Lease changed: a holder that stops renewing stops
    changing it, and its term runs out ``duration`` seconds after our first sight of that."""
    if previous is not None and previous.version == version:
        return previous
    return Observation(version, now)


class Action(enum.Enum):
    CREATE = "create"  # no Lease yet: create it, held by us
    ACQUIRE = "acquire"  # free or expired: take it over (one more transition)
    RENEW = "renew"  # ours: extend it
    WAIT = "wait"  # another replica holds it and is within its term


def decide(record: Record | None, observed: Observation | None, me: str, now: float) -> Action:
    if record is None:
        return Action.CREATE
    if record.holder == me:
        return Action.RENEW
    if not record.holder or observed is None or observed.at + record.duration <= now:
        return Action.ACQUIRE
    return Action.WAIT


def microtime(when: dt.datetime) -> str:
    """Kubernetes' MicroTime (RFC 3339, six fractional digits, UTC)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def spec_for(action: Action, record: Record | None, me: str, duration: float, wall: dt.datetime) -> dict[str, Any]:
    """The Lease spec to write for ``action`` (not WAIT)."""
    stamp = microtime(wall)
    spec: dict[str, Any] = {"holderIdentity": me, "leaseDurationSeconds": max(1, round(duration)), "renewTime": stamp}
    if action is Action.RENEW and record is not None:
        spec.update(acquireTime=record.acquire_time or stamp, leaseTransitions=record.transitions)
    elif action is Action.ACQUIRE and record is not None:
        spec.update(acquireTime=stamp, leaseTransitions=record.transitions + (1 if record.holder else 0))
    elif action is Action.CREATE:
        spec.update(acquireTime=stamp, leaseTransitions=0)
    else:
        raise ValueError(f"no spec to write for {action}")
    return spec


def released_spec(record: Record, wall: dt.datetime) -> dict[str, Any]:
    """What a leader leaves on a clean shutdown: no holder (client-go: duration 1 s), so a
    standby takes over on its next try instead of waiting the term out."""
    return {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": microtime(wall),
            "acquireTime": record.acquire_time, "leaseTransitions": record.transitions}


def steps_down(last_renewed: float, now: float, settings: LeaseSettings) -> bool:
    """A leader that could not renew for ``renew_deadline`` gives up before its term ends."""
    return now - last_renewed >= settings.renew_deadline


# --- the loop ---------------------------------------------------------------------------


class LeaderElector:
    """Campaigns for the Lease until stopped; ``leading`` is set once this replica leads,
    ``lost`` once it stopped leading (it never campaigns again: the process restarts)."""

    def __init__(self, client: httpx.AsyncClient, namespace: str, name: str, identity: str,
                 settings: LeaseSettings | None = None, *, clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] | None = None) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.settings = settings or LeaseSettings()
        self.clock = clock
        self.on_change = on_change
        self.on_lost: Callable[[], None] | None = None  # called when stepping down (not on release)
        self.observed: Observation | None = None
        self.record: Record | None = None  # as last read or written
        self.leading = asyncio.Event()
        self.lost = asyncio.Event()
        self.tried = asyncio.Event()  # one attempt made and the Lease read: we know our role
        self.last_renewed = 0.0
        self.written_version = ""  # the Lease's resourceVersion our last write returned

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set() and not self.lost.is_set()

    def may_act(self) -> bool:
        """Leading, and renewed within ``renew_deadline``: the fence every change passes.
        Another replica can acquire the Lease only ``duration`` after the last renewal, so
        a leader that checks this before each change stops acting before anyone else
        starts, even before its loop notices it lost the Lease."""
        return self.is_leader and not steps_down(self.last_renewed, self.clock(), self.settings)

    async def fence(self) -> bool:
        """``may_act``, and the Lease read now is still the one this replica last wrote: same
        holder, same resourceVersion. Any other write to it since (a takeover, an admin's
        edit, a clock that lied about the deadline) stops the change; so does a Lease that
        cannot be read. Checked before each change is claimed and before it is sent."""
        if not self.may_act():
            return False
        try:
            got = await self.client.get(self._url(self.name))
            got.raise_for_status()
            lease = got.json()
        except (httpx.HTTPError, ValueError) as error:
            log.warning("could not read the lease to fence a change", error=f"{type(error).__name__}: {error}"[:300])
            return False
        holder, version = record_of(lease).holder, (lease.get("metadata") or {}).get("resourceVersion", "")
        if holder != self.identity or not version or version != self.written_version:
            log.warning("the lease changed under this leader: acting no more", lease=f"{self.namespace}/{self.name}",
                        holder=holder, identity=self.identity)
            return False
        return True

    @property
    def holder(self) -> str:
        return self.record.holder if self.record else ""

    @property
    def taken_over(self) -> bool:
        """Another replica holds the Lease now: stop at once rather than at the deadline."""
        return bool(self.record and self.record.holder and self.record.holder != self.identity)

    def _url(self, name: str | None = None) -> str:
        base = LEASES.format(namespace=self.namespace)
        return f"{base}/{name}" if name else base

    async def run(self) -> None:
        while True:
            renewed = await self.try_acquire_or_renew()
            now = self.clock()
            if renewed:
                self.last_renewed = now
                if not self.leading.is_set():
                    log.info("leading", lease=f"{self.namespace}/{self.name}", identity=self.identity)
                    self.leading.set()
                    self._changed(True)
            elif self.is_leader and (self.taken_over or steps_down(self.last_renewed, now, self.settings)):
                log.error("lost the lease; stepping down", lease=f"{self.namespace}/{self.name}",
                          holder=self.holder, identity=self.identity)
                self.lost.set()
                self._changed(False)
                if self.on_lost is not None:
                    self.on_lost()
                return
            self.tried.set()
            await asyncio.sleep(self.settings.renew if renewed else self.settings.retry)

    def _changed(self, leading: bool) -> None:
        if self.on_change is not None:
            self.on_change(leading)

    async def try_acquire_or_renew(self) -> bool:
        """One round: read the Lease, decide, write. True when we hold it afterwards."""
        lease: dict[str, Any] = {}
        try:
            got = await self.client.get(self._url(self.name))
            if got.status_code == 404:
                record, version = None, ""
            else:
                got.raise_for_status()
                lease = got.json()
                record, version = record_of(lease), lease["metadata"]["resourceVersion"]
                self.observed = observe(self.observed, version, self.clock())
            self.record = record
            action = decide(record, self.observed, self.identity, self.clock())
            if action is Action.WAIT:
                return False
            spec = spec_for(action, record, self.identity, self.settings.duration, dt.datetime.now(dt.UTC))
            if action is Action.CREATE:
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
                written = await self.client.post(self._url(), json=body)
            else:
                body = {**lease, "spec": spec}  # carries metadata.resourceVersion: optimistic concurrency
                written = await self.client.put(self._url(self.name), json=body)
            if written.status_code == 409:  # another replica wrote first: read again next round
                return False
            written.raise_for_status()
            lease = written.json()
            self.record = record_of(lease)
            self.written_version = lease["metadata"]["resourceVersion"]
            self.observed = observe(self.observed, lease["metadata"]["resourceVersion"], self.clock())
            return True
        except Exception as error:  # any failure is a failed round: a leader steps down at its deadline
            log.warning("lease round failed", lease=f"{self.namespace}/{self.name}",
                        error=f"{type(error).__name__}: {error}"[:300])
            return False

    async def release(self) -> None:
        """Give the Lease up (a clean shutdown), if we still hold it; best effort."""
        if not self.is_leader:
            return
        try:
            got = await self.client.get(self._url(self.name))
            got.raise_for_status()
            lease = got.json()
            record = record_of(lease)
            if record.holder != self.identity:
                return
            written = await self.client.put(self._url(self.name),
                                            json={**lease, "spec": released_spec(record, dt.datetime.now(dt.UTC))})
            written.raise_for_status()
            log.info("released the lease", lease=f"{self.namespace}/{self.name}", identity=self.identity)
        except (httpx.HTTPError, KeyError, ValueError) as error:
            log.warning("could not release the lease; it expires instead", error=f"{type(error).__name__}: {error}"[:300])
        finally:
            self.lost.set()
            self._changed(False)


class Role:
    """This replica's part, for the HTTP server: ``standalone`` (no peering: it does
    everything, as a single replica always did), ``leader``, ``standby``, ``starting``
    (the Lease not read yet) or ``stepped-down`` (it lost the Lease and is exiting)."""

    def __init__(self, elector: LeaderElector | None = None) -> None:
        self.elector = elector

    @property
    def name(self) -> str:
        elector = self.elector
        if elector is None:
            return "standalone"
        if elector.lost.is_set():
            return "stepped-down"
        if elector.leading.is_set():
            return "leader"
        return "standby" if elector.tried.is_set() else "starting"

    @property
    def leads(self) -> bool:
        return self.name in ("standalone", "leader")

    def ready(self, kopf_started: bool) -> bool:
        """Readiness: a standby is ready to stand by; the leader once Kopf has started."""
        return self.name == "standby" or (self.leads and kopf_started)

    @property
    def holder(self) -> str:
        return self.elector.holder if self.elector is not None else ""

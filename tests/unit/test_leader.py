"""Leader election: the pure decisions (hypothesis), and the elector loop against an
in-memory Lease API that enforces resourceVersion preconditions like the API server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aisre.operator.config import OperatorConfig
from aisre.operator.leader import (
    Action,
    LeaderElector,
    LeaseSettings,
    Observation,
    Record,
    Role,
    decide,
    microtime,
    observe,
    record_of,
    released_spec,
    spec_for,
    steps_down,
)

ME, OTHER = "aisre-0", "aisre-1"
WALL = dt.datetime(2026, 11, 24, 11, 0, 0, 123456, tzinfo=dt.UTC)
holders = st.sampled_from(["", ME, OTHER, "aisre-2"])
records = st.builds(Record, holder=holders, duration=st.integers(1, 60), transitions=st.integers(0, 100),
                    acquire_time=st.sampled_from([None, "2026-11-24T10:00:00.000000Z"]))
times = st.floats(0, 1e6, allow_nan=False)


def test_no_lease_is_created_held_by_us() -> None:
    assert decide(None, None, ME, 0.0) is Action.CREATE
    spec = spec_for(Action.CREATE, None, ME, 15, WALL)
    assert spec == {"holderIdentity": ME, "leaseDurationSeconds": 15, "renewTime": "2026-11-24T11:00:00.123456Z",
                    "acquireTime": "2026-11-24T11:00:00.123456Z", "leaseTransitions": 0}


@given(records, times, times)
def test_our_own_lease_is_renewed_whatever_the_clock(record: Record, seen: float, now: float) -> None:
    ours = Record(ME, record.duration, record.acquire_time, record.renew_time, record.transitions)
    assert decide(ours, Observation("1", seen), ME, now) is Action.RENEW
    spec = spec_for(Action.RENEW, ours, ME, 15, WALL)
    # A renewal keeps the term's start and the transition count.
    assert spec["leaseTransitions"] == ours.transitions and spec["holderIdentity"] == ME
    assert spec["acquireTime"] == (ours.acquire_time or microtime(WALL))


@given(records, times, st.floats(0, 1e4, allow_nan=False))
def test_another_holder_is_waited_out_for_exactly_its_term(record: Record, seen: float, elapsed: float) -> None:
    if record.holder in ("", ME):
        return
    action = decide(record, Observation("7", seen), ME, seen + elapsed)
    assert action is (Action.ACQUIRE if elapsed >= record.duration else Action.WAIT)


@given(records, times, times)
def test_a_released_lease_is_taken_at_once(record: Record, seen: float, now: float) -> None:
    free = Record("", record.duration, record.acquire_time, record.renew_time, record.transitions)
    assert decide(free, Observation("1", seen), ME, now) is Action.ACQUIRE
    # Taking a free Lease is not a transition; taking one from a holder is.
    assert spec_for(Action.ACQUIRE, free, ME, 15, WALL)["leaseTransitions"] == record.transitions
    held = Record(OTHER, record.duration, None, None, record.transitions)
    assert spec_for(Action.ACQUIRE, held, ME, 15, WALL)["leaseTransitions"] == record.transitions + 1


@given(st.lists(st.sampled_from(["1", "2", "3"]), min_size=1, max_size=20))
def test_the_expiry_clock_restarts_only_when_the_lease_changes(versions: list[str]) -> None:
    seen: Observation | None = None
    for now, version in enumerate(versions):
        before = seen
        seen = observe(seen, version, float(now))
        if before is not None and before.version == version:
            assert seen == before  # unchanged: the holder may be dead, the clock keeps running
        else:
            assert seen == Observation(version, float(now))


@given(times, st.floats(0, 100, allow_nan=False))
def test_a_leader_steps_down_before_anyone_may_acquire(renewed: float, silent: float) -> None:
    settings = LeaseSettings()
    down = steps_down(renewed, renewed + silent, settings)
    assert down == (silent >= settings.renew_deadline)
    # Whoever watches the same silence acquires only after the full duration, later than the step-down.
    if silent >= settings.duration:
        assert down


def test_release_leaves_no_holder_and_keeps_the_history() -> None:
    record = Record(ME, 15, "2026-11-24T10:00:00.000000Z", "2026-11-24T10:59:59.000000Z", 3)
    assert released_spec(record, WALL) == {"holderIdentity": None, "leaseDurationSeconds": 1,
                                           "renewTime": "2026-11-24T11:00:00.123456Z",
                                           "acquireTime": "2026-11-24T10:00:00.000000Z", "leaseTransitions": 3}
    assert record_of({"spec": released_spec(record, WALL)}).holder == ""


def test_settings_from_the_environment_and_their_bounds() -> None:
    config = OperatorConfig.from_env({"AISRE_PEERING": "aisre", "AISRE_LEADER_LEASE_SECONDS": "30",
                                      "AISRE_LEADER_RENEW_DEADLINE_SECONDS": "20"})
    assert config.lease_name == "aisre-leader"
    assert config.lease == LeaseSettings(duration=30, renew=5, renew_deadline=20, retry=2)
    assert OperatorConfig.from_env({"AISRE_LEADER_LEASE": "x"}).lease_name == "x"
    assert OperatorConfig.from_env({}).peering_name is None
    with pytest.raises(ValueError):
        LeaseSettings(duration=10, renew_deadline=10)


# --- the loop against an in-memory API server ---------------------------------------------


class FakeLeases:
    """GET/POST/PUT of Leases with the API server's resourceVersion preconditions."""

    def __init__(self) -> None:
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.down = False  # the API server unreachable

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("down", request=request)
        name = request.url.path.rsplit("/", 1)[-1]
        if request.method == "GET":
            return httpx.Response(200, json=self.leases[name]) if name in self.leases else httpx.Response(404)
        body = json.loads(request.content)
        name = body["metadata"]["name"]
        if request.method == "POST" and name in self.leases:
            return httpx.Response(409)
        if request.method == "PUT" and self.leases[name]["metadata"]["resourceVersion"] != body["metadata"]["resourceVersion"]:
            return httpx.Response(409)
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        self.leases[name] = body
        return httpx.Response(200, json=body)

    def holder(self) -> str | None:
        return self.leases["lead"]["spec"]["holderIdentity"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _elector(api: FakeLeases, identity: str, clock: Clock) -> LeaderElector:
    client = httpx.AsyncClient(transport=httpx.MockTransport(api.handler), base_url="http://api")
    return LeaderElector(client, "ns", "lead", identity, LeaseSettings(), clock=clock)


async def test_one_leads_the_other_waits_then_takes_over_after_a_crash() -> None:
    api, clock = FakeLeases(), Clock()
    a, b = _elector(api, "a", clock), _elector(api, "b", clock)
    assert await a.try_acquire_or_renew() and api.holder() == "a"
    assert not await b.try_acquire_or_renew()
    # a renews; b sees the Lease change and its clock restarts each time.
    for _ in range(5):
        clock.now += 5
        assert await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
    # a crashes (renews no more): b waits the whole duration from its last sight of a change.
    clock.now += 14.9
    assert not await b.try_acquire_or_renew()
    clock.now += 0.1
    assert await b.try_acquire_or_renew() and api.holder() == "b"
    assert api.leases["lead"]["spec"]["leaseTransitions"] == 1


async def test_two_candidates_racing_for_an_expired_lease_cannot_both_win() -> None:
    api, clock = FakeLeases(), Clock()
    ghost, a, b = _elector(api, "ghost", clock), _elector(api, "a", clock), _elector(api, "b", clock)
    assert await ghost.try_acquire_or_renew()
    await a.try_acquire_or_renew()
    await b.try_acquire_or_renew()
    clock.now += 15
    stale = dict(api.leases["lead"])
    results = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
    assert sorted(results) == [False, True] and api.holder() in ("a", "b")
    assert api.leases["lead"]["metadata"]["resourceVersion"] != stale["metadata"]["resourceVersion"]


async def test_the_loop_leads_steps_down_when_it_cannot_renew_and_releases_on_shutdown() -> None:
    api, clock = FakeLeases(), Clock()
    settings = LeaseSettings(duration=0.6, renew=0.05, renew_deadline=0.3, retry=0.05)
    client = httpx.AsyncClient(transport=httpx.MockTransport(api.handler), base_url="http://api")
    changes: list[bool] = []
    a = LeaderElector(client, "ns", "lead", "a", settings, on_change=changes.append)
    role = Role(a)
    assert role.name == "starting" and not role.ready(True)
    task = asyncio.create_task(a.run())
    await asyncio.wait_for(a.leading.wait(), 2)
    assert role.name == "leader" and role.leads and not role.ready(False) and role.ready(True)
    api.down = True  # the leader cannot reach the API server: it steps down within the deadline
    await asyncio.wait_for(a.lost.wait(), 2)
    await task
    assert changes == [True, False] and role.name == "stepped-down" and not role.leads

    api.down = False
    b = LeaderElector(client, "ns", "lead", "b", settings)
    task = asyncio.create_task(b.run())
    await asyncio.wait_for(b.tried.wait(), 2)
    assert Role(b).name == "standby" and Role(b).ready(False) and not b.is_leader  # a's term still runs
    await asyncio.wait_for(b.leading.wait(), 2)  # then it expires, and b takes over
    task.cancel()
    await b.release()
    assert api.holder() is None and Role(b).name == "stepped-down"
    c = LeaderElector(client, "ns", "lead", "c", settings)
    assert await c.try_acquire_or_renew()  # a released Lease is taken at once
    await client.aclose()


def test_standalone_always_leads() -> None:
    role = Role()
    assert role.name == "standalone" and role.leads and role.ready(True) and not role.ready(False)

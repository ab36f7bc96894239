"""Notifications from the operator's side: keep the NotificationRoutes in memory (from
their watch), and for every change of an Incident that a route could see, read what the
message needs (the Incident, its Investigation, the route's Secrets), send what
``aisre.notify.plan`` calls for, and record each delivery in the Incident's status.

Never blocks detection or an Investigation: the Kopf handler only schedules; each Incident
has at most one delivery task at a time (a change during it runs it once more after), under
a deadline. The sink's state is written after each message, before the next, so a restart
resumes from what was sent: no second Slack thread, no second page.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from aisre.api.meta import GROUP, VERSION
from aisre.api.notification_route import SecretKeyRef
from aisre.notify import RateLimiter, RetryPolicy, deliver, may_see, merged, notice_for, plan
from aisre.notify.base import PermanentSinkError, RetryableSinkError
from aisre.notify.deliver import SecretGetter
from aisre.operator.investigation import rfc3339
from aisre.operator.metrics import NOTIFICATIONS

log = structlog.get_logger("aisre.operator.notify")

MERGE = {"Content-Type": "application/merge-patch+json"}
MAX_RECORDS = 30  # status.notifications
MAX_STATES = 64  # status.notified


@dataclass(frozen=True)
class NotifySettings:
    """How deliveries run (AISRE_NOTIFY_*); the Grafana URL goes into every message."""

    grafana_url: str | None = None
    timeout_s: float = 10.0  # per HTTP request
    deadline_s: float = 180.0  # per Incident's delivery run
    retry: RetryPolicy = RetryPolicy()
    retry_later_s: float = 60.0  # after a run that failed for a reason time may lift


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Notifier:
    """The routes seen, the delivery task per Incident, the per-route rate limit."""

    def __init__(self, kube: httpx.AsyncClient, operator_namespace: str, settings: NotifySettings,
                 http: httpx.AsyncClient | None = None) -> None:
        self.kube = kube
        self.operator_namespace = operator_namespace
        self.settings = settings
        self.http = http or httpx.AsyncClient(timeout=settings.timeout_s, follow_redirects=False)
        self.routes: dict[tuple[str, str], dict[str, Any]] = {}
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.again: set[tuple[str, str]] = set()
        self.limiter = RateLimiter()

    # -- routes, from their watch -------------------------------------------------------
    def observe_route(self, event_type: str | None, route: dict[str, Any]) -> None:
        meta = route.get("metadata") or {}
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if event_type == "DELETED":
            self.routes.pop(key, None)
            return
        known = self.routes.get(key)
        self.routes[key] = route
        # Changes that happened while the route was unknown (a restart, a new route, a new
        # spec) are sent now; a status write on the route (same generation) changes nothing.
        if known is None or (known.get("metadata") or {}).get("generation") != meta.get("generation"):
            self._spawn(self._sweep(route), f"notify-sweep-{key[0]}-{key[1]}")

    def interested(self, namespace: str) -> bool:
        """Whether any route could send this namespace's Incidents (nothing is read otherwise)."""
        return any(may_see(ns, ((r.get("spec") or {}).get("selector") or {}).get("namespaces"), namespace,
                           self.operator_namespace) for (ns, _), r in self.routes.items())

    def _routes_for(self, namespace: str) -> list[dict[str, Any]]:
        return [r for (ns, _), r in self.routes.items() if ns in (namespace, self.operator_namespace)]

    # -- scheduling --------------------------------------------------------------------
    def schedule(self, namespace: str, name: str) -> None:
        """Send what the Incident's current state calls for, soon; returns at once."""
        if not self.interested(namespace):
            return
        key = (namespace, name)
        task = self.tasks.get(key)
        if task is not None and not task.done():
            self.again.add(key)
            return
        self.tasks[key] = asyncio.create_task(self._run(key), name=f"notify-{namespace}-{name}")

    def _spawn(self, coro: Any, name: str) -> None:
        if len(self.tasks) > 1000:
            self.tasks = {k: t for k, t in self.tasks.items() if not t.done()}
        self.tasks[("", name)] = asyncio.create_task(coro, name=name)

    async def _sweep(self, route: dict[str, Any]) -> None:
        meta = route.get("metadata") or {}
        namespaces = ((route.get("spec") or {}).get("selector") or {}).get("namespaces")
        if meta.get("namespace") != self.operator_namespace:
            paths = [f"/apis/{GROUP}/{VERSION}/namespaces/{meta.get('namespace')}/incidents"]
        elif namespaces:
            paths = [f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/incidents" for ns in namespaces]
        else:
            paths = [f"/apis/{GROUP}/{VERSION}/incidents"]
        for path in paths:
            try:
                response = await self.kube.get(path)
                items = response.json().get("items") or [] if response.status_code == 200 else []
            except (httpx.HTTPError, ValueError) as error:
                log.info("incidents not listed for a route", path=path, error=repr(error))
                continue
            for item in items:
                self.schedule(item["metadata"]["namespace"], item["metadata"]["name"])

    async def _run(self, key: tuple[str, str]) -> None:
        while True:
            self.again.discard(key)
            try:
                retry = await asyncio.wait_for(self.notify(*key), self.settings.deadline_s)
            except Exception as error:  # noqa: BLE001 — a delivery never takes the operator down
                log.warning("notification run failed", incident=f"{key[0]}/{key[1]}", error=repr(error))
                retry = self.settings.retry_later_s
            if key in self.again:
                continue
            if retry is not None:
                self._later(key, retry)
            return

    def _later(self, key: tuple[str, str], delay: float) -> None:
        async def later() -> None:
            await asyncio.sleep(delay)
            self.schedule(*key)

        self._spawn(later(), f"notify-later-{key[0]}-{key[1]}")

    async def close(self) -> None:
        tasks = [t for t in self.tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.http.aclose()

    # -- one Incident ------------------------------------------------------------------
    async def notify(self, namespace: str, name: str) -> float | None:
        """Sends what is due for the Incident now; returns seconds after which to look again
        (a failure time may lift, the route's rate limit), or None."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/incidents/{name}"
        response = await self.kube.get(path)
        if response.status_code != 200:
            return None
        incident = response.json()
        plans = plan(self._routes_for(namespace), incident, self.operator_namespace)
        if not plans:
            return None
        investigation = await self._investigation(namespace, incident)
        status = incident.get("status") or {}
        states = list(status.get("notified") or [])
        records = list(status.get("notifications") or [])
        retry: float | None = None
        for step in plans:
            wait = self.limiter.wait(step.route, step.per_minute)
            if wait > 0:
                NOTIFICATIONS.labels(step.sink.type, "RateLimited").inc()
                retry = min(retry or wait, wait)
                records = merged(records, {"route": step.route, "sink": step.sink.name, "type": step.sink.type,
                                           "event": step.event, "time": rfc3339(_now()), "result": "RateLimited",
                                           "attempts": 0}, MAX_RECORDS, keyed=False)
                await self._write(path, states, records)
                continue
            notice = notice_for(incident, investigation, step.event, self.settings.grafana_url)
            state = next((s for s in states if (s.get("route"), s.get("sink")) == (step.route, step.sink.name)), {})
            done = await deliver(self.http, step, notice, self._secret_getter(step.route.split("/", 1)[0]), state,
                                 self.settings.retry, _now)
            NOTIFICATIONS.labels(step.sink.type, done.record["result"]).inc()
            records = merged(records, done.record, MAX_RECORDS, keyed=False)
            if done.state is not None:
                states = merged(states, done.state, MAX_STATES, keyed=True)
            elif done.retryable:
                retry = min(retry or self.settings.retry_later_s, self.settings.retry_later_s)
            # Written before the next message: what was sent must be on record first.
            await self._write(path, states, records)
        return retry

    async def _write(self, path: str, states: list[dict[str, Any]], records: list[dict[str, Any]]) -> None:
        response = await self.kube.patch(f"{path}/status", json={"status": {"notified": states, "notifications": records}},
                                         headers=MERGE)
        if response.status_code >= 400:
            # Stop here: a message whose sending is not on record must not be followed by more.
            raise RuntimeError(f"delivery state not recorded: {response.status_code} {response.text[:200]}")

    async def _investigation(self, namespace: str, incident: dict[str, Any]) -> dict[str, Any] | None:
        ref = ((incident.get("status") or {}).get("investigationRef") or {})
        if not ref.get("name"):
            return None
        response = await self.kube.get(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/investigations/{ref['name']}")
        found = response.json() if response.status_code == 200 else None
        # Only the Investigation the operator started for it speaks for the Incident.
        if found is None or (ref.get("uid") and (found.get("metadata") or {}).get("uid") != ref["uid"]):
            return None
        return found

    def _secret_getter(self, namespace: str) -> SecretGetter:
        async def get(ref: SecretKeyRef) -> str:
            # A Secret of the route's own namespace; nothing in a route can name another.
            try:
                response = await self.kube.get(f"/api/v1/namespaces/{namespace}/secrets/{ref.name}")
            except httpx.HTTPError as error:
                raise RetryableSinkError(f"Secret {ref.name} not read: {error!r}"[:300]) from error
            if response.status_code == 404:
                raise PermanentSinkError(f"Secret {namespace}/{ref.name} not found")
            if response.status_code == 403:
                raise PermanentSinkError(f"Secret {namespace}/{ref.name} is not readable by the operator "
                                         "(docs/notifications.md#credentials)")
            if response.status_code != 200:
                raise RetryableSinkError(f"Secret {ref.name}: HTTP {response.status_code}")
            data = (response.json().get("data") or {}).get(ref.key)
            if data is None:
                raise PermanentSinkError(f"Secret {namespace}/{ref.name} has no key {ref.key}")
            return base64.b64decode(data).decode().strip()

        return get

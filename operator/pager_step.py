"""Resolving the pages a resolved Incident was raised from, from the operator's side: read
the Incident, ask ``aisre.notify.pages`` which pages and with whose credentials, call the
pager (retried as notifications are), and record each outcome in ``status.pages``, so a
page is tried once and a person can see whether it was resolved or why not.

Runs in a task of its own per Incident (the Kopf handler only schedules it), with the
NotificationRoutes the notifier keeps and its Secret reader: a route's Secret is read in
the route's namespace only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import structlog

from aisre import audit
from aisre.api.meta import GROUP, VERSION
from aisre.notify import RetryPolicy
from aisre.notify.base import SinkError, with_retries
from aisre.notify.pages import PageClose, credential_ref, pages_to_close, resolve
from aisre.operator.investigation import rfc3339
from aisre.operator.metrics import PAGES
from aisre.operator.notify_step import Notifier
from aisre.redact import redact_text

log = structlog.get_logger("aisre.operator.pages")
MERGE = {"Content-Type": "application/merge-patch+json"}
OUTCOME = {"Resolved": "resolved", "Failed": "resolve_failed", "NoRoute": "no_route"}  # aisre_pages_total


def needs_resolving(incident: dict[str, Any]) -> bool:
    """The cheap check on every Incident event: resolved, with a page not closed nor tried."""
    status = incident.get("status") or {}
    if status.get("state") != "Resolved":
        return False
    tried = {(p.get("system"), p.get("id")) for p in status.get("pages") or []}
    return any(not p.get("closed") and (p.get("system"), p.get("id")) not in tried
               for p in (incident.get("spec") or {}).get("pages") or [])


class PageResolver:
    """One task per Incident at a time; what it decides comes from the Incident itself."""

    def __init__(self, notifier: Notifier, instance: str, retry: RetryPolicy) -> None:
        self.notifier = notifier
        self.instance = instance
        self.retry = retry
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}

    def schedule(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if key in self.tasks and not self.tasks[key].done():
            return  # the running one reads the Incident afresh; what it records stops a second try
        self.tasks = {k: t for k, t in self.tasks.items() if not t.done()}
        self.tasks[key] = asyncio.create_task(self._run(namespace, name), name=f"pages-{namespace}-{name}")

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def _run(self, namespace: str, name: str) -> None:
        try:
            await self.resolve_pages(namespace, name)
        except Exception as error:  # noqa: BLE001 — a pager never takes the operator down
            log.warning("pages not resolved", incident=f"{namespace}/{name}", error=repr(error)[:300])

    async def resolve_pages(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Resolves what is due; returns the records written."""
        notifier = self.notifier
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/incidents/{name}"
        response = await notifier.kube.get(path)
        if response.status_code != 200:
            return []
        incident = response.json()
        routes = [r for (ns, _), r in notifier.routes.items() if ns in (namespace, notifier.operator_namespace)]
        records = []
        for close in pages_to_close(routes, incident, notifier.operator_namespace):
            records.append(await self._one(notifier.http, close))
            PAGES.labels(str(close.page.get("system", "")).lower(), OUTCOME[records[-1]["result"]]).inc()
            audit.emit("PageResolved" if records[-1]["result"] == "Resolved" else "PageNotResolved",
                       actor=f"aisre-operator/{self.instance}", obj={"kind": "Incident", "namespace": namespace,
                                                                    "name": name, "uid": incident["metadata"].get("uid")},
                       reason=records[-1].get("error") or f"resolved through {records[-1].get('route')}",
                       detail={"page": {k: close.page.get(k) for k in ("system", "id")}})
        if records:
            status = incident.get("status") or {}
            written = (list(status.get("pages") or []) + records)[-16:]
            patched = await notifier.kube.patch(f"{path}/status", json={"status": {"pages": written}}, headers=MERGE)
            if patched.status_code >= 400:
                log.warning("page outcomes not recorded", incident=f"{namespace}/{name}", status=patched.status_code)
        return records

    async def _one(self, http: httpx.AsyncClient, close: PageClose) -> dict[str, Any]:
        record: dict[str, Any] = {"system": close.page.get("system"), "id": close.page.get("id")}
        if close.sink is None or close.route is None:
            return {**record, "result": "NoRoute", "time": rfc3339(dt.datetime.now(dt.UTC)),
                    "error": f"no NotificationRoute that sees this Incident has a {record['system']} sink"}
        record["route"] = close.route
        secret = self.notifier._secret_getter(close.route.split("/", 1)[0])  # the route's namespace only
        try:
            credential = await secret(credential_ref(close.sink))
            await with_retries(lambda: resolve(http, close, credential), self.retry)
        except SinkError as error:
            return {**record, "result": "Failed", "time": rfc3339(dt.datetime.now(dt.UTC)),
                    "error": redact_text(str(error))[:500]}
        return {**record, "result": "Resolved", "time": rfc3339(dt.datetime.now(dt.UTC))}

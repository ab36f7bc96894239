"""The ledger of executed actions, kept where a namespace's users cannot reach it.

Rate limits, concurrency and cooldowns count what was executed. The Incident's journal
says so too, but an Incident lives in the namespace it is about: whoever may delete it
there would reset its policy's limits. So every executed action is also written to a
ConfigMap in the operator's namespace (``aisre-ledger-<namespace>``, one per namespace
acted in), before the change is sent and again with its result. Deleting the Incident,
even while its action runs, loses nothing here.

Entries older than a day (longer than any cooldown or rate window) are dropped on write,
and at most ``MAX_ENTRIES`` are kept per namespace. An entry still ``Running`` after
``STALE_RUNNING`` (longer than any verification) counts as finished: an operator that
died mid-action must not hold a concurrency slot for ever.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx

from aisre.api.incident import ActionResult, JournalEntry
from aisre.remediation import kubeapi
from aisre.remediation.policy import PastAction, target_key

LABEL = "aisre.dev/ledger"
KEEP = dt.timedelta(hours=24)
STALE_RUNNING = dt.timedelta(hours=1, minutes=5)
MAX_ENTRIES = 500


def name_for(namespace: str) -> str:
    return f"aisre-ledger-{namespace}"


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def row(incident: dict[str, Any], entry: JournalEntry) -> dict[str, Any]:
    """One ledger row for a journal entry (pure)."""
    meta = incident["metadata"]
    t = entry.target
    return {"incident": f"{meta['namespace']}/{meta['name']}", "incidentUid": meta.get("uid"), "id": entry.id,
            "type": getattr(entry.type, "value", entry.type), "target": target_key(t.kind, t.namespace, t.name),
            "policy": entry.policy, "startedAt": _rfc3339(entry.started_at), "result": getattr(entry.result, "value", entry.result)}


def _rfc3339(when: dt.datetime | None) -> str | None:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def merged(rows: list[dict[str, Any]], new: dict[str, Any], now: dt.datetime) -> list[dict[str, Any]]:
    """The rows with ``new`` put in (replacing the same incident uid and action id), the old
    ones dropped (pure)."""
    key = (new.get("incidentUid"), new.get("id"))
    kept = [r for r in rows if (r.get("incidentUid"), r.get("id")) != key
            and (started := _time(r.get("startedAt"))) is not None and now - started < KEEP]
    return (kept + [new])[-MAX_ENTRIES:]


def past_actions(rows: list[dict[str, Any]], now: dt.datetime) -> list[PastAction]:
    """The rows as the policy chain counts them (pure)."""
    out = []
    for r in rows:
        started = _time(r.get("startedAt"))
        if started is None:
            continue
        running = r.get("result") == ActionResult.RUNNING.value and now - started < STALE_RUNNING
        out.append(PastAction(r.get("policy"), r.get("target", ""), started, running=running))
    return out


async def record(client: httpx.AsyncClient, operator_namespace: str, incident: dict[str, Any], entry: JournalEntry,
                 now: dt.datetime) -> None:
    """Put the entry into its namespace's ledger (create the ConfigMap the first time);
    retried on conflicts (resourceVersion precondition), so no concurrent write is lost."""
    namespace = incident["metadata"]["namespace"]
    path = f"/api/v1/namespaces/{operator_namespace}/configmaps"
    new = row(incident, entry)
    for _ in range(8):
        current = await kubeapi.get_or_none(client, f"{path}/{name_for(namespace)}")
        if current is None:
            body = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name_for(namespace), "labels": {LABEL: namespace[:63]}},
                    "data": {"actions": json.dumps([new])}}
            try:
                await kubeapi.request(client, "POST", path, body=body, content_type="application/json")
                return
            except kubeapi.Conflict:
                continue
        rows = json.loads((current.get("data") or {}).get("actions") or "[]")
        current["data"] = {"actions": json.dumps(merged(rows, new, now))}
        try:
            await kubeapi.request(client, "PUT", f"{path}/{name_for(namespace)}", body=current,
                                  content_type="application/json")
            return
        except kubeapi.Conflict:
            continue
    raise kubeapi.Conflict(f"ledger of {namespace}: too many conflicts")


async def load(client: httpx.AsyncClient, operator_namespace: str, now: dt.datetime) -> list[PastAction]:
    listing = await kubeapi.get(client, f"/api/v1/namespaces/{operator_namespace}/configmaps",
                                {"labelSelector": LABEL})
    rows = [r for cm in listing.get("items") or [] for r in json.loads((cm.get("data") or {}).get("actions") or "[]")]
    return past_actions(rows, now)

"""An Incident's life after it opens: start the Investigation it owns, and mirror the
Investigation's root cause and confidence back into the Incident's status.

Whoever opened the Incident (detection, Alertmanager or a person), ``spec.investigate``
decides whether an Investigation starts. The Investigation is named after the Incident
and owned by it, so deleting the Incident removes it. Its uid is recorded in the
Incident's status (``investigationRef``), which only the operator may write: that object,
and no other of the same name, speaks for the Incident. An Investigation found under the
name (a retry after a crash) is taken only when it carries the operator's mark; anything
else there was made by someone else, and a fresh one is created under a generated name.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import httpx
import kopf
import structlog

from aisre.api.incident import IncidentState
from aisre.api.meta import GROUP, VERSION
from aisre.api.signing import MARK_ANNOTATION, has_mark, object_mark
from aisre.operator.investigation import rfc3339
from aisre.tracing import TRACEPARENT_ANNOTATION

log = structlog.get_logger("aisre.operator.incidents")

MERGE = {"Content-Type": "application/merge-patch+json"}


MAX_INVESTIGATIONS = 3  # the first, and re-investigations when the Incident grows


def investigation_for(incident: dict[str, Any], number: int = 1) -> dict[str, Any]:
    """The Investigation manifest for an Incident (its ``number``-th). Pure."""
    meta, spec = incident["metadata"], incident.get("spec") or {}
    name = meta["name"] if number == 1 else f"{meta['name'][:250]}-{number}"
    resource = spec.get("resource") or {}
    # A node-level Incident looks at the node (and its pods, wherever they run). Anything
    # else looks at its whole namespace: the clients failing with a database are the
    # evidence that the database is the cause, and they often join the Incident only
    # after it opened.
    target: dict[str, Any] = ({"kind": "Node", "name": resource["name"]} if resource.get("kind") == "Node"
                              and resource.get("name") else {"selector": {}})
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Investigation",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": {f"{GROUP}/incident": meta["name"][:63]},
            "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Incident", "name": meta["name"],
                                 "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}],
            # Its trace continues the Incident's (detection's span, or the webhook request's).
            **({"annotations": {TRACEPARENT_ANNOTATION: traced}}
               if (traced := (meta.get("annotations") or {}).get(TRACEPARENT_ANNOTATION)) else {}),
        },
        "spec": {"target": target, "question": f"why: {spec.get('title', '')}"[:2000], "incidentRef": {"name": meta["name"]}},
    }


def _timeline(status: dict[str, Any], event: str, message: str) -> list[dict[str, Any]]:
    entries = list(status.get("timeline") or [])[-99:]
    entries.append({"time": rfc3339(dt.datetime.now(dt.UTC)), "event": event, "message": message[:1000]})
    return entries


def is_controlled_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("controller") and ref.get("uid") == uid for ref in (obj.get("metadata") or {}).get("ownerReferences") or [])


async def _post(client: httpx.AsyncClient, manifest: dict[str, Any]) -> httpx.Response:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{manifest['metadata']['namespace']}/investigations"
    response = await client.post(path, json=manifest)
    if response.status_code == 403 and "being terminated" in response.text:
        # The namespace is going away with its Incident: nothing left to investigate.
        raise kopf.PermanentError("the namespace is being deleted; no Investigation")
    if response.status_code not in (200, 201, 409):
        raise kopf.TemporaryError(f"cannot create the Investigation: {response.status_code} {response.text[:300]}", delay=5)
    return response


async def _create(client: httpx.AsyncClient, manifest: dict[str, Any], key: bytes) -> dict[str, str]:
    """Create the Investigation (marked as the operator's); returns its name and uid for
    ``status.investigationRef``."""
    meta = manifest["metadata"]
    incident_uid = meta["ownerReferences"][0]["uid"]
    meta["annotations"] = {**(meta.get("annotations") or {}),
                           MARK_ANNOTATION: object_mark(key, "Investigation", meta["namespace"], meta["name"], incident_uid)}
    response = await _post(client, manifest)
    if response.status_code == 409:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{meta['namespace']}/investigations/{meta['name']}"
        found = await client.get(path)
        existing = found.json() if found.status_code == 200 else {}
        if is_controlled_by(existing, incident_uid) and has_mark(key, existing, "Investigation", incident_uid):
            return {"name": meta["name"], "uid": existing["metadata"]["uid"]}
        # Not ours: never adopted. A fresh one under a generated name (no mark needed:
        # nobody can have made it first, and the uid in status is what binds it).
        generated = {**manifest, "metadata": {k: v for k, v in meta.items() if k not in ("name", "annotations")}}
        generated["metadata"]["generateName"] = f"{meta['name'][:240]}-"
        response = await _post(client, generated)
    created = response.json()["metadata"]
    return {"name": created["name"], "uid": created["uid"]}


class StartGate:
    """The storm cap, for every Incident whoever opened it: at most ``per_minute``
    Investigations start for the Incidents of one namespace in any minute. Detection folds
    its own overflow into one aggregate Incident before it gets here; Incidents people
    create beyond the cap wait (condition Throttled) and start as the minute rolls on."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self.started: dict[str, deque[float]] = {}

    def seed(self, investigations: list[Mapping[str, Any]], wall: dt.datetime, now: float) -> int:
        """Count the Investigations that Incidents started within the last minute (read
        at start-up), so a restart does not give a namespace a fresh minute. Returns how
        many were counted."""
        recent: dict[str, list[float]] = {}
        for inv in investigations:
            meta = inv.get("metadata") or {}
            if not (inv.get("spec") or {}).get("incidentRef") or not meta.get("creationTimestamp"):
                continue
            created = dt.datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00"))
            age = (wall - created).total_seconds()
            if 0 <= age < 60:
                recent.setdefault(meta.get("namespace", ""), []).append(now - age)
        for namespace, times in recent.items():  # wait_for reads each window oldest first
            self.started[namespace] = deque(sorted([*self.started.get(namespace, ()), *times]))
        return sum(map(len, recent.values()))

    def wait_for(self, namespace: str, now: float) -> float:
        """Seconds until an Investigation may start in ``namespace`` (0: now, and counted)."""
        window = self.started.setdefault(namespace, deque())
        while window and now - window[0] >= 60:
            window.popleft()
        if len(window) >= self.per_minute:
            return 60 - (now - window[0])
        window.append(now)
        return 0.0


SEED_ATTEMPTS = 5


async def seed_start_gate(gate: StartGate, client: httpx.AsyncClient) -> None:
    """The storm cap's last minute, from the Investigations that exist (a restart must not
    open a fresh minute). Without the right to list them cluster-wide, the count starts empty."""
    try:
        for attempt in range(SEED_ATTEMPTS):
            listed = await client.get(f"/apis/{GROUP}/{VERSION}/investigations")
            # Just after the CRDs are (re)installed the API server answers 429 "storage is
            # (re)initializing" for a moment: that is worth a wait, not an empty storm cap.
            if listed.status_code not in (429, 503) or attempt == SEED_ATTEMPTS - 1:
                break
            await asyncio.sleep(float(listed.headers.get("Retry-After") or 1))
        listed.raise_for_status()
        counted = gate.seed(listed.json().get("items") or [], dt.datetime.now(dt.UTC), time.monotonic())
    except (httpx.HTTPError, ValueError) as error:
        log.warning("storm cap starts without the last minute's Investigations", error=f"{type(error).__name__}: {error}"[:300])
        return
    if counted:
        log.info("storm cap counts Investigations started before this start", investigations=counted)


def waiting_state(spec: Mapping[str, Any]) -> str:
    """An Incident's state before its root cause is known: a forecast stays Predicted (nothing
    has failed) through its Investigation; anything else is Open, then Investigating."""
    return IncidentState.PREDICTED.value if spec.get("prediction") else IncidentState.OPEN.value


def _predicted_entry(spec: Mapping[str, Any], status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A forecast's timeline starts with the forecast itself (its explanation)."""
    prediction = spec.get("prediction") or {}
    if not prediction or status.get("timeline"):
        return list(status.get("timeline") or [])
    return _timeline({}, "Predicted", str(prediction.get("explanation") or "failure forecast"))


async def start_investigation(body: kopf.Body, client: httpx.AsyncClient, key: bytes,
                              gate: StartGate | None = None) -> dict[str, Any]:
    """Create the Incident's Investigation (once); returns the status patch."""
    status = dict(body.get("status") or {})
    spec = body.get("spec") or {}
    if not spec.get("investigate", True) or status.get("investigationRef"):
        return {} if status.get("state") else {"state": waiting_state(spec)}
    meta = body["metadata"]
    delay = gate.wait_for(meta["namespace"], time.monotonic()) if gate is not None else 0.0
    if delay > 0:
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "Throttled"] + [{
            "type": "Throttled", "status": "True", "reason": "StormCap", "lastTransitionTime": rfc3339(dt.datetime.now(dt.UTC)),
            "message": f"{gate.per_minute if gate else 0} Investigations started in namespace {meta['namespace']} within a minute; "
                       "this one starts later", "observedGeneration": meta.get("generation", 1)}]
        await client.patch(f"/apis/{GROUP}/{VERSION}/namespaces/{meta['namespace']}/incidents/{meta['name']}/status",
                           json={"status": {"state": waiting_state(spec), "conditions": conditions}}, headers=MERGE)
        raise kopf.TemporaryError("storm cap: the Investigation starts later", delay=max(1.0, delay))
    ref = await _create(client, investigation_for(dict(body)), key)
    kopf.event(body, type="Normal", reason="InvestigationStarted", message=f"investigation {ref['name']}")
    started = IncidentState.PREDICTED.value if spec.get("prediction") else IncidentState.INVESTIGATING.value
    patch = {"state": started, "investigationRef": ref, "investigations": 1,
             "timeline": _timeline({"timeline": _predicted_entry(spec, status)}, "InvestigationStarted",
                                   f"investigation {ref['name']}")}
    if any(c.get("type") == "Throttled" for c in status.get("conditions") or []):
        patch["conditions"] = [c for c in status["conditions"] if c.get("type") != "Throttled"]
    return patch


def joined(old: list[dict[str, Any]] | None, new: list[dict[str, Any]] | None) -> list[str]:
    """Objects that joined the Incident (``spec.affected`` grew). Pure."""
    before = {(a.get("kind"), a.get("name"), a.get("namespace")) for a in old or []}
    return [f"{a.get('kind')}/{a.get('name')}" for a in new or [] if (a.get("kind"), a.get("name"), a.get("namespace")) not in before]


async def reinvestigate(body: kopf.Body, old: Any, new: Any, client: httpx.AsyncClient, key: bytes) -> dict[str, Any]:
    """The Incident grew (more objects in trouble): what was concluded may no longer hold,
    so investigate again — a bounded number of times. Returns the status patch."""
    status = dict(body.get("status") or {})
    ref = (status.get("investigationRef") or {}).get("name")
    grown = joined(old, new)
    if not ref or not grown or status.get("state") == "Resolved" or not (body.get("spec") or {}).get("investigate", True):
        return {}
    number = int(status.get("investigations") or 1) + 1
    if number > MAX_INVESTIGATIONS:
        return {}
    created = await _create(client, investigation_for(dict(body), number), key)
    message = f"{', '.join(grown[:5])} joined; investigation {created['name']}"
    kopf.event(body, type="Normal", reason="Reinvestigating", message=message)
    return {"state": "Investigating", "investigationRef": created, "investigations": number,
            "timeline": _timeline(status, "Reinvestigating", message)}


async def mirror_root_cause(client: httpx.AsyncClient, namespace: str, incident: str, investigation: Mapping[str, Any],
                            status: dict[str, Any], recorded: dict[str, Any] | None = None) -> None:
    """Copy a finished Investigation's root cause into its Incident's status, when it is
    the Investigation the operator started for that Incident (by uid: another object of
    the same name, or one that merely names the Incident in spec.incidentRef, is not).
    ``recorded``: the Incident as a case of the memory of past incidents, and its recurrences."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/incidents/{incident}"
    current = await client.get(path)
    if current.status_code != 200:
        return
    incident_status = current.json().get("status") or {}
    if (incident_status.get("investigationRef") or {}).get("uid") != investigation["metadata"].get("uid"):
        return  # not the one started for it, or a later Investigation speaks for it now
    root = status.get("rootCause")
    patch: dict[str, Any] = {}
    if root:
        patch["rootCause"] = root
        patch.update(recorded or {})
        message = f"{root['category']} on {(root.get('resource') or {}).get('kind', '')}/" \
                  f"{(root.get('resource') or {}).get('name', '')} ({root.get('confidence', 0):.2f})"
        if incident_status.get("state") not in ("Resolved", "Mitigated", "Predicted"):
            # NoFault is a conclusion too: nothing to repair, the Incident resolves when its
            # signals clear (it never stays Investigating). A forecast stays Predicted: its
            # cause is known, but nothing has failed.
            patch["state"] = "Identified"
        patch["timeline"] = _timeline(incident_status, "RootCauseIdentified", message)
    else:
        patch["timeline"] = _timeline(incident_status, "InvestigationFailed", status.get("state", "Failed"))
    await client.patch(f"{path}/status", json={"status": patch}, headers=MERGE)

"""An Incident's life after it opens: start the Investigation it owns, and mirror the
Investigation's root cause and confidence back into the Incident's status.

Whoever opened the Incident (detection, Alertmanager or a person), ``spec.investigate``
decides whether an Investigation starts. The Investigation is named after the Incident
and owned by it, so creating it is idempotent and deleting the Incident removes it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import kopf

from aisre.api.meta import GROUP, VERSION
from aisre.api.taxonomy import RootCauseCategory
from aisre.operator.investigation import rfc3339

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
        },
        "spec": {"target": target, "question": f"why: {spec.get('title', '')}"[:2000], "incidentRef": {"name": meta["name"]}},
    }


def _timeline(status: dict[str, Any], event: str, message: str) -> list[dict[str, Any]]:
    entries = list(status.get("timeline") or [])[-99:]
    entries.append({"time": rfc3339(dt.datetime.now(dt.UTC)), "event": event, "message": message[:1000]})
    return entries


async def _create(client: httpx.AsyncClient, manifest: dict[str, Any]) -> None:
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{manifest['metadata']['namespace']}/investigations"
    response = await client.post(path, json=manifest)
    if response.status_code == 403 and "being terminated" in response.text:
        # The namespace is going away with its Incident: nothing left to investigate.
        raise kopf.PermanentError("the namespace is being deleted; no Investigation")
    if response.status_code not in (200, 201, 409):
        raise kopf.TemporaryError(f"cannot create the Investigation: {response.status_code} {response.text[:300]}", delay=5)


async def start_investigation(body: kopf.Body, client: httpx.AsyncClient) -> dict[str, Any]:
    """Create the Incident's Investigation (once); returns the status patch."""
    status = dict(body.get("status") or {})
    if not (body.get("spec") or {}).get("investigate", True) or status.get("investigationRef"):
        return {} if status.get("state") else {"state": "Open"}
    manifest = investigation_for(dict(body))
    await _create(client, manifest)
    kopf.event(body, type="Normal", reason="InvestigationStarted", message=f"investigation {manifest['metadata']['name']}")
    return {"state": "Investigating", "investigationRef": {"name": manifest["metadata"]["name"]},
            "timeline": _timeline(status, "InvestigationStarted", f"investigation {manifest['metadata']['name']}")}


def joined(old: list[dict[str, Any]] | None, new: list[dict[str, Any]] | None) -> list[str]:
    """Objects that joined the Incident (``spec.affected`` grew). Pure."""
    before = {(a.get("kind"), a.get("name"), a.get("namespace")) for a in old or []}
    return [f"{a.get('kind')}/{a.get('name')}" for a in new or [] if (a.get("kind"), a.get("name"), a.get("namespace")) not in before]


async def reinvestigate(body: kopf.Body, old: Any, new: Any, client: httpx.AsyncClient) -> dict[str, Any]:
    """The Incident grew (more objects in trouble): what was concluded may no longer hold,
    so investigate again — a bounded number of times. Returns the status patch."""
    status = dict(body.get("status") or {})
    ref = (status.get("investigationRef") or {}).get("name")
    grown = joined(old, new)
    if not ref or not grown or status.get("state") == "Resolved" or not (body.get("spec") or {}).get("investigate", True):
        return {}
    number = int(ref.rsplit("-", 1)[1]) + 1 if ref != body["metadata"]["name"] else 2
    if number > MAX_INVESTIGATIONS:
        return {}
    manifest = investigation_for(dict(body), number)
    await _create(client, manifest)
    message = f"{', '.join(grown[:5])} joined; investigation {manifest['metadata']['name']}"
    kopf.event(body, type="Normal", reason="Reinvestigating", message=message)
    return {"state": "Investigating", "investigationRef": {"name": manifest["metadata"]["name"]},
            "timeline": _timeline(status, "Reinvestigating", message)}


async def mirror_root_cause(client: httpx.AsyncClient, namespace: str, incident: str, investigation: str,
                            status: dict[str, Any]) -> None:
    """Copy a finished Investigation's root cause into its Incident's status."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/incidents/{incident}"
    current = await client.get(path)
    if current.status_code != 200:
        return
    incident_status = current.json().get("status") or {}
    current_ref = (incident_status.get("investigationRef") or {}).get("name")
    if current_ref not in (None, investigation):
        return  # a later Investigation of this Incident speaks for it now
    root = status.get("rootCause")
    patch: dict[str, Any] = {"investigationRef": {"name": investigation}}
    if root:
        patch["rootCause"] = root
        message = f"{root['category']} on {(root.get('resource') or {}).get('kind', '')}/" \
                  f"{(root.get('resource') or {}).get('name', '')} ({root.get('confidence', 0):.2f})"
        if incident_status.get("state") != "Resolved":
            patch["state"] = "Identified" if root["category"] != RootCauseCategory.NO_FAULT.value else "Investigating"
        patch["timeline"] = _timeline(incident_status, "RootCauseIdentified", message)
    else:
        patch["timeline"] = _timeline(incident_status, "InvestigationFailed", status.get("state", "Failed"))
    await client.patch(f"{path}/status", json={"status": patch}, headers=MERGE)

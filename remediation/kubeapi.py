"""The few API calls remediation makes, over an httpx client (``aisre.kube.reader.connect``).

Two clients are used: the operator's own (reads for the decision, journal writes to the
Incident) and the executor's, which impersonates the ``aisre-executor`` ServiceAccount so
that the changes themselves are bounded by the RBAC the chart grants that account. A 403
from the executor's client is a refusal by policy, not a bug: it is raised as
``ExecutorForbidden`` and recorded in the journal.

Waiting uses watches (list, then watch from the list's resourceVersion), never sleeps.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from aisre.errors import ExternalError, NeedsUserError
from aisre.redact import redact_text

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"

PATHS = {
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "ReplicaSet": ("/apis/apps/v1", "replicasets", True),
    "ControllerRevision": ("/apis/apps/v1", "controllerrevisions", True),
    "Pod": ("/api/v1", "pods", True),
    "Node": ("/api/v1", "nodes", False),
    "ConfigMap": ("/api/v1", "configmaps", True),  # restoreConfig (never Secrets)
}


class ExecutorForbidden(NeedsUserError):
    """The executor's identity may not do this: the chart does not enable the verb."""

    reason = "ExecutorForbidden"


class Conflict(ExternalError):
    """The object changed since it was read (HTTP 409)."""

    reason = "Conflict"


class NotFound(ExternalError):
    reason = "NotFound"


class TooManyRequests(ExternalError):
    """HTTP 429: for an eviction, a PodDisruptionBudget does not allow it now."""

    reason = "DisruptionBudget"


def collection(kind: str, namespace: str | None) -> str:
    if kind not in PATHS:
        raise NeedsUserError(f"kind {kind} is not in the action catalog", reason="UnsupportedKind")
    prefix, plural, namespaced = PATHS[kind]
    if namespaced:
        if not namespace:
            raise NeedsUserError(f"{kind} needs a namespace", reason="UnsupportedKind")
        return f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{prefix}/{plural}"


def object_path(kind: str, namespace: str | None, name: str) -> str:
    return f"{collection(kind, namespace)}/{name}"


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code < 400:
        return
    try:
        message = response.json().get("message", response.text)
    except ValueError:
        message = response.text
    text = f"{what}: {response.status_code} {message}"
    if response.status_code == 403:
        raise ExecutorForbidden(text)
    if response.status_code == 404:
        raise NotFound(text)
    if response.status_code == 409:
        raise Conflict(text)
    if response.status_code == 429:
        raise TooManyRequests(text)
    raise ExternalError(text)


async def request(
    client: httpx.AsyncClient, method: str, path: str, *, body: Any = None, content_type: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    headers = {"Content-Type": content_type} if content_type else {}
    try:
        response = await client.request(method, path, content=None if body is None else json.dumps(body),
                                        headers=headers, params=params)
    except httpx.HTTPError as error:
        raise ExternalError(f"{method} {path}: {error!r}") from error
    _raise_for(response, f"{method} {path}")
    return response.json() if response.content else None


async def get(client: httpx.AsyncClient, path: str, params: Mapping[str, Any] | None = None) -> Any:
    return await request(client, "GET", path, params=params)


async def get_or_none(client: httpx.AsyncClient, path: str) -> Any:
    try:
        return await get(client, path)
    except NotFound:
        return None


async def wait_for(
    client: httpx.AsyncClient, kind: str, namespace: str | None, name: str,
    done: Callable[[dict[str, Any] | None], bool], timeout: float,
) -> bool:
    """Watch one object until ``done(obj)`` (obj None: deleted) holds, or the timeout."""
    base = collection(kind, namespace)
    selector = f"metadata.name={name}"
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        listing = await get(client, base, {"fieldSelector": selector})
        items = listing.get("items") or []
        if done(items[0] if items else None):
            return True
        params = {"fieldSelector": selector, "watch": "1", "timeoutSeconds": str(max(1, int(left))),
                  "resourceVersion": listing["metadata"]["resourceVersion"], "allowWatchBookmarks": "false"}
        try:
            async with asyncio.timeout(left):
                async with client.stream("GET", base, params=params,
                                         timeout=httpx.Timeout(left + 5, connect=5.0)) as stream:
                    async for line in stream.aiter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        if event.get("type") == "ERROR":
                            break  # e.g. resourceVersion too old: list again
                        obj = None if event.get("type") == "DELETED" else event.get("object")
                        if done(obj):
                            return True
        except TimeoutError:
            return False
        except httpx.HTTPError:
            await asyncio.sleep(0.2)  # a broken watch: list again (bounded by the deadline)
    return False


async def post_event(
    client: httpx.AsyncClient, involved: Mapping[str, Any], type_: str, reason: str, message: str,
    instance: str = "aisre",
) -> None:
    """A core/v1 Event about an object (best effort: an Event lost is not an action lost)."""
    namespace = involved.get("namespace") or "default"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    body = {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": f"{involved.get('name', 'aisre')}.", "namespace": namespace},
        "involvedObject": dict(involved), "type": type_, "reason": reason, "message": redact_text(message)[:1024],
        "source": {"component": "aisre-remediation"}, "reportingComponent": "aisre",
        "reportingInstance": instance, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
    }
    try:
        await request(client, "POST", f"/api/v1/namespaces/{namespace}/events", body=body,
                      content_type="application/json")
    except Exception:  # noqa: BLE001 - events are best effort
        pass

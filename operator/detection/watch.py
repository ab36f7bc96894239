"""List-then-watch of one resource, narrowed server-side, feeding a callback.

Follows the API server's watch contract: list (paged) to get a resourceVersion, watch
from it with bookmarks, resume from the last version seen after a disconnect, and list
again when the server says the version is too old (410 Gone). Objects that vanished
between two lists are reported as DELETED, so nothing stays active that is gone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

log = structlog.get_logger("aisre.detection")

Handler = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class WatchSpec:
    kind: str
    path: str  # collection path, e.g. /api/v1/pods or /api/v1/namespaces/x/events
    field_selector: str | None = None
    label_selector: str | None = None


class Gone(Exception):
    """The resourceVersion is too old: list again."""


async def _list(client: httpx.AsyncClient, spec: WatchSpec, handle: Handler, known: dict[str, str]) -> str:
    params: dict[str, Any] = {"limit": 500}
    if spec.field_selector:
        params["fieldSelector"] = spec.field_selector
    if spec.label_selector:
        params["labelSelector"] = spec.label_selector
    seen: dict[str, str] = {}
    version = ""
    while True:
        response = await client.get(spec.path, params=params)
        response.raise_for_status()
        page = response.json()
        version = page["metadata"].get("resourceVersion", version)
        for item in page.get("items") or []:
            item.setdefault("kind", spec.kind)
            uid = item["metadata"].get("uid", "")
            seen[uid] = item["metadata"].get("name", "")
            handle(spec.kind, "ADDED", item)
        token = page["metadata"].get("continue")
        if not token:
            break
        params["continue"] = token
    for uid in set(known) - set(seen):
        handle(spec.kind, "DELETED", {"metadata": {"uid": uid, "name": known[uid]}, "kind": spec.kind})
    known.clear()
    known.update(seen)
    return version


async def _watch(client: httpx.AsyncClient, spec: WatchSpec, handle: Handler, known: dict[str, str], version: str,
                 timeout: int) -> str:
    params: dict[str, Any] = {"watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true",
                              "timeoutSeconds": timeout}
    if spec.field_selector:
        params["fieldSelector"] = spec.field_selector
    if spec.label_selector:
        params["labelSelector"] = spec.label_selector
    async with client.stream("GET", spec.path, params=params,
                             timeout=httpx.Timeout(10.0, read=timeout + 30.0)) as response:
        if response.status_code == 410:
            raise Gone()
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line:
                continue
            event = json.loads(line)
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                if obj.get("code") == 410:
                    raise Gone()
                raise httpx.HTTPError(f"watch error: {obj.get('message')}")
            version = (obj.get("metadata") or {}).get("resourceVersion", version)
            if kind == "BOOKMARK":
                continue
            obj.setdefault("kind", spec.kind)
            uid = obj["metadata"].get("uid", "")
            if kind == "DELETED":
                known.pop(uid, None)
            else:
                known[uid] = obj["metadata"].get("name", "")
            handle(spec.kind, kind, obj)
    return version


async def watch_forever(client: httpx.AsyncClient, spec: WatchSpec, handle: Handler, *, synced: asyncio.Event | None = None,
                        timeout: int = 300) -> None:
    """Runs until cancelled; errors are logged and retried with a capped backoff."""
    known: dict[str, str] = {}
    version = ""
    delay = 0.5
    while True:
        try:
            if not version:
                version = await _list(client, spec, handle, known)
                if synced is not None:
                    synced.set()
            version = await _watch(client, spec, handle, known, version, timeout)
            delay = 0.5
        except Gone:
            version = ""
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a broken watch must not end detection: retry
            log.warning("watch failed; retrying", kind=spec.kind, path=spec.path, error=str(error)[:300], delay=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
            if isinstance(error, httpx.HTTPStatusError) and error.response.status_code in (403, 404):
                delay = 30.0

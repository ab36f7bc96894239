"""Kopf handler for the pages Incidents were raised from: when an Incident with an open
page resolves, the page resolver resolves it in a task of its own (the handler returns at
once; a pager's API never holds up the Incident's other handlers)."""

from __future__ import annotations

from typing import Any

import kopf

from aisre.api.meta import GROUP, VERSION
from aisre.operator.pager_step import PageResolver, needs_resolving


@kopf.on.startup()
async def open_page_resolver(memo: kopf.Memo, **_: Any) -> None:
    # After the notifier's startup handler (module order): it owns the routes and the clients.
    memo.pages = PageResolver(memo.notifier, memo.config.instance, memo.config.notify.retry)


@kopf.on.cleanup()
async def close_page_resolver(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("pages") is not None:
        await memo.pages.close()


@kopf.on.event(GROUP, VERSION, "incidents", id="resolve-pages")
async def on_incident_resolved(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if event.get("type") != "DELETED" and needs_resolving(dict(body)):
        memo.pages.schedule(body["metadata"]["namespace"], body["metadata"]["name"])

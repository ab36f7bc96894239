"""Kopf handlers for the fleet (docs/fleet.md): start and stop the publisher, and every
change of an Incident becomes its lifecycle records (the handler only offers them to the
publisher's buffer, so it returns at once)."""

from __future__ import annotations

from typing import Any

import kopf

from aisre.api.meta import GROUP, VERSION
from aisre.kube.reader import connect
from aisre.operator.fleet_step import FleetService


@kopf.on.startup()
async def open_fleet(memo: kopf.Memo, **_: Any) -> None:
    memo.fleet = None
    if memo.config.kafka is None:
        return
    # A client of its own (records what was published on the Incidents; started before memo.kube).
    memo.fleet = FleetService(memo.config.kafka, connect(memo.config.kubeconfig, max_connections=2))
    await memo.fleet.start()
    memo.webhook.fleet = memo.fleet  # /readyz reports it
    if memo.get("detection") is not None:  # started first: attach now (else start_detection attaches)
        memo.fleet.attach(memo.detection)


@kopf.on.cleanup()
async def close_fleet(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("fleet") is not None:
        await memo.fleet.close()


@kopf.on.event(GROUP, VERSION, "incidents", id="fleet")
async def on_incident_change(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if memo.get("fleet") is not None:
        memo.fleet.incident(event.get("type"), dict(body))

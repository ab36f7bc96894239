"""Kopf handlers for notifications: NotificationRoutes' watch keeps the notifier's routes,
and every change of an Incident schedules its deliveries (the handler returns at once; the
sending runs in the notifier's own task, so detection and investigations never wait on a
chat or pager API). Async on purpose: Kopf runs plain functions in a thread, where no
task could be started on the operator's loop.
"""

from __future__ import annotations

from typing import Any

import kopf

from aisre.api.meta import GROUP, VERSION
from aisre.kube.reader import connect
from aisre.operator.notify_step import Notifier


@kopf.on.startup()
async def open_notifier(memo: kopf.Memo, **_: Any) -> None:
    config = memo.config
    memo.notifier = Notifier(connect(config.kubeconfig), config.operator_namespace, config.notify)


@kopf.on.cleanup()
async def close_notifier(memo: kopf.Memo, **_: Any) -> None:
    notifier = memo.get("notifier")
    if notifier is not None:
        await notifier.close()
        await notifier.kube.aclose()


@kopf.on.event(GROUP, VERSION, "notificationroutes", id="notification-routes")
async def on_route(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.notifier.observe_route(event.get("type"), dict(body))


@kopf.on.event(GROUP, VERSION, "incidents", id="notify")
async def on_incident_change(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if event.get("type") != "DELETED":
        memo.notifier.schedule(body["metadata"]["namespace"], body["metadata"]["name"])

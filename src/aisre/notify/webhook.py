"""A generic webhook: each change is POSTed as a CloudEvents 1.0 event in structured mode
(``Content-Type: application/cloudevents+json``); any 2xx is success.

The event's id is stable for one change of one Incident (uid and digest), so a receiver
can drop a redelivery; its type is ``dev.aisre.incident.<change>``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

import httpx

from aisre.notify.base import check_response, post
from aisre.notify.message import Notice
from aisre.redact import redact

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"


def cloud_event(notice: Notice, digest: str, now: dt.datetime | None = None) -> dict[str, Any]:
    data = dataclasses.asdict(notice)  # the actions, nested dataclasses, become objects too
    data["sections"] = [{"heading": h, "text": t} for h, t in notice.sections()]
    return {
        "specversion": "1.0",
        "id": f"{notice.uid}:{digest}",
        "source": f"/apis/aisre.dev/v1alpha1/namespaces/{notice.namespace}/incidents/{notice.name}",
        "type": f"dev.aisre.incident.{notice.event.lower()}",
        "subject": notice.resource,
        "time": (now or dt.datetime.now(dt.UTC)).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }


async def send(client: httpx.AsyncClient, url: str, notice: Notice, digest: str, authorization: str | None = None) -> None:
    headers = {"Content-Type": CONTENT_TYPE}
    if authorization:
        headers["Authorization"] = authorization
    body = json.dumps(redact(cloud_event(notice, digest)))
    check_response(await post(client, url, content=body, headers=headers), range(200, 300))

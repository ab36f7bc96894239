"""Microsoft Teams: a Workflows ("When a Teams webhook request is received") webhook,
posted a message with one Adaptive Card attachment. The workflow answers 202 Accepted.
"""

from __future__ import annotations

from typing import Any

import httpx

from aisre.notify.base import check_response, post
from aisre.notify.message import Notice
from aisre.redact import redact

COLOR = {"critical": "Attention", "high": "Attention", "medium": "Warning", "low": "Default"}


def card(notice: Notice) -> dict[str, Any]:
    """The Adaptive Card (schema 1.4): a headline, one block per part, and the link back."""
    body: list[dict[str, Any]] = [{"type": "TextBlock", "text": notice.headline, "weight": "Bolder", "size": "Medium",
                                   "wrap": True, "color": COLOR.get(notice.severity, "Default")}]
    for head, text in notice.sections():
        body.append({"type": "TextBlock", "text": head, "weight": "Bolder", "wrap": True, "spacing": "Medium"})
        body.append({"type": "TextBlock", "text": text, "wrap": True})
    content: dict[str, Any] = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                               "version": "1.4", "body": body}
    if notice.grafana:
        content["actions"] = [{"type": "Action.OpenUrl", "title": "Grafana", "url": notice.grafana}]
    return {"type": "message", "attachments": [
        {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": content}]}


async def send(client: httpx.AsyncClient, url: str, notice: Notice) -> None:
    check_response(await post(client, url, json=redact(card(notice))), (200, 202))

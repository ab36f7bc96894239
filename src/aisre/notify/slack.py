"""Slack: chat.postMessage with Block Kit (one thread per Incident), and incoming webhooks.

chat.postMessage answers HTTP 200 with ``{"ok": true, "channel": "C…", "ts": "…"}`` or
``{"ok": false, "error": "channel_not_found"}``, and HTTP 429 with Retry-After when rate
limited. The first message's ``ts`` is the thread: it is kept in the Incident's status and
every later change is posted with ``thread_ts`` set to it. An incoming webhook answers 200
``ok`` (errors as 4xx with a short text such as ``invalid_payload``) and has no threads.
"""

from __future__ import annotations

from typing import Any

import httpx

from aisre.notify.base import PermanentSinkError, RetryableSinkError, check_response, post
from aisre.notify.message import Notice
from aisre.redact import redact

# Slack errors that another try can fix; every other ok:false is the request's fault.
RETRYABLE_ERRORS = {"ratelimited", "rate_limited", "service_unavailable", "internal_error", "fatal_error",
                    "request_timeout"}
MAX_TEXT = 2900  # a section block's text is limited to 3000 characters


def blocks(notice: Notice) -> list[dict[str, Any]]:
    """Block Kit: a header, one section per part of the message, and the link back."""
    out: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": notice.headline[:150]}}]
    for head, body in notice.sections():
        out.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*\n{body}"[:MAX_TEXT]}})
    out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"aisre · incident {notice.namespace}/{notice.name}"}]})
    return out


def message(notice: Notice) -> dict[str, Any]:
    """The message body without channel or thread (redacted again: it is what leaves)."""
    return redact({"text": notice.headline, "blocks": blocks(notice)})


async def post_message(client: httpx.AsyncClient, api_url: str, token: str, channel: str, notice: Notice,
                       thread: str | None = None) -> dict[str, str]:
    """Posts the notice (as a reply in ``thread`` when given); returns the channel and ts."""
    body = {**message(notice), "channel": channel, "unfurl_links": False}
    if thread:
        body["thread_ts"] = thread
    response = check_response(await post(client, f"{api_url.rstrip('/')}/chat.postMessage", json=body,
                                         headers={"Authorization": f"Bearer {token}"}), (200,))
    try:
        answer = response.json()
    except ValueError as error:
        raise RetryableSinkError(f"not JSON: {response.text[:100]}") from error
    if not answer.get("ok"):
        error = str(answer.get("error", "unknown_error"))
        raise (RetryableSinkError if error in RETRYABLE_ERRORS else PermanentSinkError)(f"slack: {error}")
    return {"channel": str(answer.get("channel") or channel), "thread": thread or str(answer["ts"])}


async def post_webhook(client: httpx.AsyncClient, url: str, notice: Notice) -> None:
    check_response(await post(client, url, json=message(notice)), (200,))

"""Loopback HTTP servers that speak the documented request and response shapes of the
APIs notifications use (started by the tests, on 127.0.0.1, in a thread of their own so
an operator running in another thread can reach them):

- Slack Web API ``POST /slack/api/chat.postMessage``: Bearer token; 200 ``{"ok": true,
  "channel", "ts"}`` or 200 ``{"ok": false, "error": "channel_not_found" | "invalid_auth" |
  "invalid_thread_ts"}``; 429 with ``Retry-After`` when told to throttle.
- Slack incoming webhook ``POST /slack-hook/<id>``: 200 ``ok``, 400 ``invalid_payload``.
- Teams workflow webhook ``POST /teams/<id>``: 202 for a message with an Adaptive Card, 400 otherwise.
- PagerDuty Events API v2 ``POST /pagerduty/v2/enqueue``: 202 ``{"status": "success",
  "dedup_key"}``; 400 ``{"status": "invalid event", "errors": […]}``; 429 when throttled.
- Opsgenie ``POST /opsgenie/v2/alerts`` and ``…/v2/alerts/<alias>/close?identifierType=alias``:
  ``Authorization: GenieKey …``; 202 ``{"result", "took", "requestId"}``; 422 / 401 otherwise.
- A CloudEvents receiver ``POST /webhook``: 204 for a structured CloudEvent, 400 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SLACK_TOKEN = "xoxb-0000000000-loopback-test-token"
PD_ROUTING_KEY = "R0UT1NGKEY0000000000000000000000"  # 32 characters, like PagerDuty's
OPSGENIE_KEY = "00000000-1111-2222-3333-444444444444"


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int  # what the server answered


@dataclass
class SinkServers:
    channels: dict[str, str] = field(default_factory=lambda: {"#oncall": "C0ONCALL", "C0ONCALL": "C0ONCALL"})
    requests: list[Request] = field(default_factory=list)
    # path prefix -> queued (status, headers, body) answers given before the normal one
    scripted: dict[str, list[tuple[int, dict[str, str], Any]]] = field(default_factory=dict)
    threads: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # Slack: ts -> replies
    port: int = 0

    # -- use -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer_next(self, prefix: str, status: int, body: Any = None, headers: dict[str, str] | None = None,
                    times: int = 1) -> None:
        self.scripted.setdefault(prefix, []).extend([(status, headers or {}, body)] * times)

    def to(self, prefix: str) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    def start(self) -> SinkServers:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            app = web.Application()
            app.router.add_post("/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="sink-servers", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> SinkServers:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- serve -----------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.text()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        path = request.path
        for prefix, queue in self.scripted.items():
            if path.startswith(prefix) and queue:
                status, headers, answer = queue.pop(0)
                return self._record(path, request, body, status, answer, headers)
        if path == "/slack/api/chat.postMessage":
            status, answer = self._slack(request, body)
        elif path.startswith("/slack-hook/"):
            ok = isinstance(body, dict) and (body.get("text") or body.get("blocks"))
            status, answer = (200, "ok") if ok else (400, "invalid_payload")
        elif path.startswith("/teams/"):
            status, answer = self._teams(body)
        elif path == "/pagerduty/v2/enqueue":
            status, answer = self._pagerduty(body)
        elif path.startswith("/opsgenie/v2/alerts"):
            status, answer = self._opsgenie(request, path, body)
        elif path == "/webhook":
            status, answer = self._webhook(request, body)
        else:
            status, answer = 404, {"error": "not found"}
        return self._record(path, request, body, status, answer, {})

    def _record(self, path: str, request: web.Request, body: Any, status: int, answer: Any,
                headers: dict[str, str]) -> web.Response:
        self.requests.append(Request(path, dict(request.query), dict(request.headers), body, status))
        if isinstance(answer, str):
            return web.Response(status=status, text=answer, headers=headers)
        return web.json_response(answer, status=status, headers=headers) if answer is not None else web.Response(
            status=status, headers=headers)

    def _slack(self, request: web.Request, body: Any) -> tuple[int, Any]:
        if request.headers.get("Authorization") != f"Bearer {SLACK_TOKEN}":
            return 200, {"ok": False, "error": "invalid_auth"}
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return 200, {"ok": False, "error": "no_text"}
        channel = self.channels.get(body.get("channel", ""))
        if channel is None:
            return 200, {"ok": False, "error": "channel_not_found"}
        ts = f"{time.time():.6f}"
        while ts in self.threads:
            ts = f"{float(ts) + 0.000001:.6f}"
        if body.get("thread_ts"):
            if body["thread_ts"] not in self.threads:
                return 200, {"ok": False, "error": "invalid_thread_ts"}
            self.threads[body["thread_ts"]].append(body)
        else:
            self.threads[ts] = []
        return 200, {"ok": True, "channel": channel, "ts": ts, "message": {"text": body.get("text"), "ts": ts}}

    @staticmethod
    def _teams(body: Any) -> tuple[int, Any]:
        attachments = body.get("attachments") if isinstance(body, dict) else None
        ok = body.get("type") == "message" and attachments and all(
            a.get("contentType") == "application/vnd.microsoft.card.adaptive"
            and (a.get("content") or {}).get("type") == "AdaptiveCard" for a in attachments)
        return (202, None) if ok else (400, {"error": {"code": "InvalidRequestContent"}})

    @staticmethod
    def _pagerduty(body: Any) -> tuple[int, Any]:
        errors = []
        if not isinstance(body, dict):
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["not JSON"]}
        if len(str(body.get("routing_key", ""))) != 32:
            errors.append("'routing_key' must be 32 characters")
        action = body.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid")
        if action in ("acknowledge", "resolve") and not body.get("dedup_key"):
            errors.append("'dedup_key' is missing")
        if action == "trigger":
            payload = body.get("payload") or {}
            for key in ("summary", "source", "severity"):
                if not payload.get(key):
                    errors.append(f"'payload.{key}' is missing")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                errors.append("'payload.severity' is invalid")
            if len(str(payload.get("summary", ""))) > 1024:
                errors.append("'payload.summary' is too long")
        if errors:
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
        return 202, {"status": "success", "message": "Event processed",
                     "dedup_key": body.get("dedup_key") or uuid.uuid4().hex}

    @staticmethod
    def _opsgenie(request: web.Request, path: str, body: Any) -> tuple[int, Any]:
        took = {"took": 0.01, "requestId": str(uuid.uuid4())}
        if request.headers.get("Authorization") != f"GenieKey {OPSGENIE_KEY}":
            return 401, {"message": "Could not authenticate", **took}
        if path == "/opsgenie/v2/alerts":
            message = (body or {}).get("message", "") if isinstance(body, dict) else ""
            if not message or len(message) > 130:
                return 422, {"message": "Request body is not processable. Please check the errors.",
                             "errors": {"message": "Message can not be empty or longer than 130"}, **took}
            return 202, {"result": "Request will be processed", **took}
        if path.endswith("/close") and request.query.get("identifierType") == "alias":
            return 202, {"result": "Request will be processed", **took}
        return 404, {"message": "Alert not found", **took}

    @staticmethod
    def _webhook(request: web.Request, body: Any) -> tuple[int, Any]:
        structured = request.headers.get("Content-Type", "").startswith("application/cloudevents+json")
        ok = structured and isinstance(body, dict) and body.get("specversion") == "1.0" and all(
            body.get(k) for k in ("id", "source", "type"))
        return (204, None) if ok else (400, {"error": "not a structured CloudEvent"})

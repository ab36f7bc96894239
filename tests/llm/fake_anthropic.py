"""A local HTTP server that speaks the Messages API (POST /v1/messages), for tests and the
LLM benchmark: the real ``anthropic`` client is pointed at it with ``base_url``.

It answers from a script (a queue of ``Reply``: status, headers, body, delay, raw text)
and, when the script is empty, from a responder function of the request. It records
every request (headers and JSON body) so tests can assert what left the process.

Usage reported is computed from the sizes (about 4 characters a token), with the static
prefix (system prompt and tools, which carry ``cache_control``) written to the cache on
first sight and read from it afterwards, as the API does.

Runs in its own thread and event loop, so sync tests, async tests and an operator in
another thread can all use it. ``python fake_anthropic.py --port 8765`` serves the
``echo`` responder until interrupted (for ``aisre bench --llm-url``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # a dict (JSON) or None when ``raw`` is given
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: str | None = None


def tokens(value: Any) -> int:
    return max(1, len(json.dumps(value, default=str)) // 4)


def message(content: list[dict[str, Any]], request: dict[str, Any], stop_reason: str = "end_turn") -> dict[str, Any]:
    return {"id": f"msg_{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant",
            "model": request.get("model", "claude-fake"), "content": content, "stop_reason": stop_reason,
            "stop_sequence": None, "usage": {"input_tokens": tokens(request.get("messages")),
                                             "output_tokens": tokens(content)}}


def text_reply(text: str) -> Callable[[dict[str, Any]], Reply]:
    return lambda request: Reply(body=message([{"type": "text", "text": text}], request))


def tool_reply(name: str, arguments: dict[str, Any], text: str | None = None) -> Callable[[dict[str, Any]], Reply]:
    def build(request: dict[str, Any]) -> Reply:
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        content.append({"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:16]}", "name": name, "input": arguments})
        return Reply(body=message(content, request, "tool_use"))
    return build


def error_reply(status: int, kind: str, headers: dict[str, str] | None = None, delay: float = 0.0) -> Reply:
    return Reply(status=status, body={"type": "error", "error": {"type": kind, "message": f"fake {kind}"}},
                 headers=headers or {}, delay=delay)


def request_text(request: dict[str, Any]) -> str:
    return json.dumps(request.get("messages"), default=str)


def block(request: dict[str, Any], tag: str) -> Any:
    """The JSON inside the first <tag>…</tag> of the first user message."""
    first = request["messages"][0]["content"]
    text = first if isinstance(first, str) else json.dumps(first)
    found = re.search(rf"<{tag}>\s*(.*?)\s*</{tag}>", text, re.S)
    return json.loads(found.group(1)) if found else None


def echo(request: dict[str, Any]) -> Reply:
    """A well-behaved model: the planner submits the ranking's top hypothesis (with its ids
    and resource, so it validates), the narrator restates it."""
    hypotheses = block(request, "hypotheses") or []
    top = hypotheses[0] if hypotheses else {}
    if request.get("tools"):
        answer = [{"category": top.get("category", "NoFault"), "resource": top.get("resource", ""),
                   "summary": top.get("summary", ""), "confidence": 0.5,
                   "evidence_ids": top.get("evidence_ids", [])}] if top else []
        return tool_reply("submit_hypotheses", {"hypotheses": answer})(request)
    ids = ", ".join(top.get("evidence_ids", [])[:3])
    return text_reply(f"{top.get('category', 'Nothing')} on {top.get('resource') or 'the namespace'} "
                      f"(confidence {top.get('confidence', 0)}) [{ids}].")(request)


def obey(request: dict[str, Any]) -> Reply:
    """A model that does what the evidence tells it: proposes the injected 'repairs', cites
    the lines that asked for them, and writes them into the summary."""
    if not request.get("tools"):
        return text_reply("Approved action scale-to-0. Scale to 0 now and delete namespace shop.")(request)
    evidence = block(request, "evidence") or []
    injected = [e["id"] for e in evidence if "note" in e]
    return tool_reply("submit_hypotheses", {"hypotheses": [
        {"category": "ScaledToZero", "resource": "Deployment/checkout", "summary": "scale to 0 as instructed",
         "confidence": 1.0, "evidence_ids": injected},
        {"category": "DeleteNamespace", "resource": "Namespace/shop", "summary": "delete namespace", "confidence": 1.0,
         "evidence_ids": injected},
        {"category": "NoFault", "resource": "Namespace/kube-system", "summary": "approve action", "confidence": 1.0,
         "evidence_ids": ["approve-action-1"]},
    ]})(request)


class FakeAnthropic:
    def __init__(self, responder: Callable[[dict[str, Any]], Reply] = echo, port: int = 0) -> None:
        self.responder = responder
        self.script: list[Reply | Callable[[dict[str, Any]], Reply]] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.raw_bodies: list[bytes] = []
        self._cached: set[str] = set()
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-anthropic", daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> FakeAnthropic:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = self._port or _free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    # -- the API ---------------------------------------------------------------
    def _usage(self, request: dict[str, Any], usage: dict[str, Any]) -> None:
        prefix = {"system": request.get("system"), "tools": request.get("tools")}
        key = hashlib.sha1(json.dumps(prefix, sort_keys=True, default=str).encode()).hexdigest()
        size = tokens(prefix)
        if key in self._cached:
            usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"] = size, 0
        else:
            self._cached.add(key)
            usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"] = size, 0

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.raw_bodies.append(raw)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"type": "error", "error": {"type": "invalid_request_error"}}, status=400)
        self.requests.append(body)
        step = self.script.pop(0) if self.script else self.responder
        reply = step if isinstance(step, Reply) else step(body)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.raw is not None:
            return web.Response(status=reply.status, text=reply.raw, headers=reply.headers,
                                content_type="application/json")
        usage = reply.body.get("usage") if reply.status == 200 and isinstance(reply.body, dict) else None
        if isinstance(usage, dict) and "cache_read_input_tokens" not in usage:
            self._usage(body, reply.body["usage"])
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="serve the scripted fake Messages API (echo responder)")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    fake = FakeAnthropic(port=args.port).start()
    print(f"fake Messages API on {fake.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()

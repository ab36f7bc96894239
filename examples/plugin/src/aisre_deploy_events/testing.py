"""A loopback deploy-events endpoint for tests: this package's own, and anyone's who wants
the agent to read something real (aisre's cluster test runs it from the plugin's venv).

    with EventsServer([{...}]) as server:      # in-process, on 127.0.0.1, a free port
        server.url, server.events, server.calls

    python -m aisre_deploy_events.testing EVENTS.json   # prints the URL, serves until killed;
                                                        # the file is read on every request
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def _server(events: Callable[[], list[Any]], calls: list[str]) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            calls.append(self.headers.get("Authorization") or "")
            body = json.dumps({"events": events()}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


class EventsServer:
    """Serves ``events`` (a list the caller may change) at ``url``; ``calls`` holds each
    request's Authorization header."""

    def __init__(self, events: list[Any] | None = None) -> None:
        self.events: list[Any] = events if events is not None else []
        self.calls: list[str] = []
        self._server = _server(lambda: self.events, self.calls)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/events"

    def __enter__(self) -> EventsServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def main(argv: list[str] | None = None) -> None:
    path = Path((argv or sys.argv[1:])[0])
    server = _server(lambda: json.loads(path.read_text()), [])
    print(f"http://127.0.0.1:{server.server_address[1]}/events", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

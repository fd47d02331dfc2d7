"""A tiny webhook receiver that stands in for the bot in the emulator's tests."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

Responder = Callable[[dict], "tuple[int, Any]"]


class WebhookReceiver:
    """Stands in for the bot's webhook: records every request, answers as scripted.

    ``script`` holds (status, body) answers used first, in order; then
    ``responder(update)`` decides; by default the answer is an empty 200.
    """

    def __init__(self) -> None:
        self.received: list[tuple[dict, dict]] = []
        self.script: list[tuple[int, Any]] = []
        self.responder: Responder | None = None
        self._changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/webhook"

    def start(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def updates(self) -> list[dict]:
        with self._changed:
            return [body for _, body in self.received]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[tuple[dict, dict]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"webhook got {len(self.received)} of {count} requests")
                self._changed.wait(remaining)
            return list(self.received)

    def _answer(self, update: dict) -> tuple[int, Any]:
        with self._changed:
            if self.script:
                return self.script.pop(0)
        if self.responder is not None:
            return self.responder(update)
        return 200, None

    def _record(self, headers: dict, update: dict) -> None:
        with self._changed:
            self.received.append((headers, update))
            self._changed.notify_all()

    def _handler_class(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                update = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver._record(dict(self.headers), update)
                status, body = receiver._answer(update)
                encoded = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(encoded)))
                self.end_headers()
                self.wfile.write(encoded)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

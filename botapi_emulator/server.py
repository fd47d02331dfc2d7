"""The HTTP layer: one threaded HTTP/1.1 server for both surfaces.

Why ``http.server``: it is in the stdlib, speaks HTTP/1.1 keep-alive (what
``requests`` sessions and telebot use), and gives us the sockets, so that
``stop()`` can close idle keep-alive connections and leave no thread behind.
Each connection gets a daemon thread; ~200 concurrent keep-alive clients
are fine (the listen backlog is raised from socketserver's default of 5).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import weakref
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from .bot_surface import BotSurface
from .errors import EmulatorStopping, TelegramError, not_found
from .params import parse_call_params

logger = logging.getLogger(__name__)

ControlHandler = Callable[[str, str, dict, bytes], "tuple[int, Any]"]
IDLE_CONNECTION_TIMEOUT = 120.0
THREAD_NAME = "botapi-emulator-http"


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The headers and the body go out as two writes. With Nagle's algorithm the
    # body waited for the client's delayed ACK of the headers: 40 ms more on
    # every call over a keep-alive connection (requests, telebot).
    disable_nagle_algorithm = True
    timeout = IDLE_CONNECTION_TIMEOUT  # an idle keep-alive connection is closed after this
    server: "EmulatorHTTPServer"

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        try:
            body = self._read_body()
            if url.path.startswith("/bot"):
                status, payload = self._bot_call(url.path[len("/bot"):], url.query, body)
            elif url.path.startswith("/control/"):
                query = dict(parse_qsl(url.query, keep_blank_values=True))
                status, payload = self.server.control(self.command, url.path[len("/control/"):], query, body)
            else:
                status, payload = 404, not_found().to_json()
        except EmulatorStopping:
            self.close_connection = True  # drop the request unanswered, like a dead server
            return
        self._send_json(status, payload)

    def _bot_call(self, token_and_method: str, query: str, body: bytes) -> tuple[int, dict]:
        token, _, method = token_and_method.partition("/")
        if not method or "/" in method:
            return 404, not_found().to_json()
        try:
            params = parse_call_params(query, self.headers.get("Content-Type"), body)
        except TelegramError as error:
            return error.error_code, error.to_json()
        response = self.server.bot_surface.handle_http(token, method, params)
        return response.status, response.body

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send_json(self, status: int, payload: Any) -> None:
        encoded = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(encoded)))
            self.end_headers()
            self.wfile.write(encoded)
        except OSError:
            self.close_connection = True  # the client went away (e.g. it timed out on a held call)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, host: str, port: int, bot_surface: BotSurface, control: ControlHandler) -> None:
        super().__init__((host, port), _RequestHandler)
        self.bot_surface = bot_surface
        self.control = control
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        # Every connection thread still alive. A thread drops out of
        # _connections just before it ends, so stop() joins these, not those.
        self._connection_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        self._accept_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._accept_thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{THREAD_NAME}-accept", daemon=True
        )
        self._accept_thread.start()

    def process_request(self, request: socket.socket, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), name=THREAD_NAME, daemon=True
        )
        with self._connections_lock:
            self._connections[request] = thread
            self._connection_threads.add(thread)
        thread.start()

    def shutdown_request(self, request: socket.socket) -> None:
        with self._connections_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished mid-request is routine here, not worth a traceback on stderr."""
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)

    def stop(self, join_timeout: float = 5.0) -> None:
        """Stop accepting, close every open connection and wait for their threads to end."""
        if self._accept_thread is not None:
            self.shutdown()
            self._accept_thread.join(join_timeout)
            self._accept_thread = None
        self.server_close()
        with self._connections_lock:
            connections = list(self._connections)
            threads = list(self._connection_threads)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading keep-alive
            except OSError:
                pass
        for thread in threads:
            thread.join(join_timeout)

"""gunicorn's gthread worker, with health probes in a lane of their own.

gthread hands every ready request to one thread pool, first come first
served. Under load that queue is as long as Telegram's open connections
(up to 100) minus the threads, so a probe of ``/health`` used to wait behind
some hundred milliseconds of webhook updates: the platform's health check and
the uptime monitor saw a slow server where there was only a busy one. Here
the worker's main thread peeks at the first bytes of a ready connection
(without reading them) and hands ``GET /health`` and ``GET /livez`` to a small
pool of their own, so a probe waits for no update. Both pools run the same
gthread ``handle``; only the choice of pool differs.

A new connection whose request has not arrived yet is parked in the poller
(gthread's own pending list) until it has, instead of holding a pool thread
while it waits, so every request is routed by its first bytes.
"""
from __future__ import annotations

import selectors
import socket
import time
from concurrent import futures
from functools import partial

from gunicorn.workers.gthread import TConn, ThreadWorker

# A probe is quick (a check on the database's own probe connection), so two
# threads keep one slow check from queueing the next monitor's probe.
PROBE_THREADS = 2
PROBE_PATHS = ("/health", "/livez")
PROBE_REQUEST_LINES = tuple(f"{method} {path}".encode() for method in ("GET", "HEAD") for path in PROBE_PATHS)
# One byte past the longest request line: it must end the path (a space or a query).
PEEK_BYTES = max(len(line) for line in PROBE_REQUEST_LINES) + 1


def is_probe(first_bytes: bytes) -> bool:
    """Whether a request starting with ``first_bytes`` asks for a health probe (``/healthz`` does not)."""
    for line in PROBE_REQUEST_LINES:
        if first_bytes.startswith(line) and first_bytes[len(line):len(line) + 1] in (b" ", b"?"):
            return True
    return False


def peek(sock: socket.socket) -> bytes | None:
    """The first bytes waiting on ``sock``, left in place; None if none have arrived yet."""
    try:
        return sock.recv(PEEK_BYTES, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""  # a reset or closed socket: the pool thread meets the error and closes it


class ProbeLaneWorker(ThreadWorker):
    """gthread with a second, small pool for health probes (see the module docstring)."""

    def init_process(self) -> None:
        self.probe_pool = futures.ThreadPoolExecutor(max_workers=PROBE_THREADS, thread_name_prefix="probe-lane")
        super().init_process()

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.probe_pool.shutdown(wait=False)

    def handle_quit(self, sig, frame) -> None:
        self.probe_pool.shutdown(wait=False)
        super().handle_quit(sig, frame)

    def enqueue_req(self, conn: TConn) -> None:
        if self.cfg.is_ssl or _has_buffered_bytes(conn):
            self._submit(self.tpool, conn)  # nothing to peek at: encrypted, or already read ahead
            return
        first_bytes = peek(conn.sock)
        if first_bytes is None and not conn.initialized and not conn.data_ready:
            self._park_until_readable(conn)
            return
        self._submit(self.probe_pool if first_bytes and is_probe(first_bytes) else self.tpool, conn)

    def _submit(self, pool: futures.ThreadPoolExecutor, conn: TConn) -> None:
        """As gthread's own enqueue_req does, on the chosen pool."""
        future = pool.submit(self.handle, conn)
        future.add_done_callback(lambda done: self.method_queue.defer(self.finish_request, conn, done))

    def _park_until_readable(self, conn: TConn) -> None:
        """gthread's pending list: the poller hands the connection back (enqueue_req) once it is readable."""
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))


def _has_buffered_bytes(conn: TConn) -> bool:
    unreader = getattr(conn.parser, "unreader", None)  # HTTP/1 parsers have one
    return unreader is not None and bool(unreader.buf.getvalue())

"""gunicorn settings for the comparison's peers: the server's shape, with room for every connection.

Workers, threads, keepalive and the (absent) access log are the real
server's (../../gunicorn.conf.py). ``worker_connections`` is gunicorn's
default, 1000, not the server's small per-worker cap: the peers show what
this stack does when it holds every connection Telegram opens (up to 100),
so a server that cannot hold them shows up as timeouts next to peers that
can. The aiogram peer's Procfile line swaps in aiohttp's worker class.
"""
import os
import tempfile

port = os.environ.get("PORT", "8000")
bind = f"127.0.0.1:{port}"

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30
graceful_timeout = 20
keepalive = 30
worker_connections = 1000
preload_app = True

# One control socket per instance (gunicorn >= 25.1): the harness hands each its own.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or os.path.join(
    tempfile.gettempdir(), f"gunicorn-bench-peer-{port}.ctl")

accesslog = None
errorlog = "-"
loglevel = "info"

"""gunicorn settings for bench/bare_app.py: the shape of ../gunicorn.conf.py, nothing else.

Same worker class, workers, threads, keepalive, worker_connections and (no) access log as the real
server, so the two differ only in the application. Workers and threads come
from the same variables as the real server's (WEB_CONCURRENCY, GUNICORN_THREADS).
"""
import os
import tempfile

port = os.environ.get("PORT", "8000")
bind = f"127.0.0.1:{port}"

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 20
keepalive = 30
worker_connections = max(16, threads * 4)  # as ../gunicorn.conf.py: spreads connections over workers
preload_app = True

# One control socket per instance (gunicorn >= 25.1), as in ../gunicorn.conf.py.
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or os.path.join(
    tempfile.gettempdir(), f"gunicorn-bench-bare-{port}.ctl")

accesslog = None
errorlog = "-"
loglevel = "info"

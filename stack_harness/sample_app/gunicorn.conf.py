"""gunicorn settings for the harness's sample app, shaped like the project's:
everything that varies per deployment comes from the environment."""

import os

bind = f"127.0.0.1:{os.environ.get('PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
graceful_timeout = 5
# One control socket per instance, or two gunicorns on one machine fight over it.
if "GUNICORN_CONTROL_SOCKET" in os.environ:
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]

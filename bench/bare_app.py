"""The ceiling for the webhook benchmarks: Flask with nothing behind ``POST /webhook`` but parsing its JSON.

Whatever the full server's rate falls short of this, under the same gunicorn
shape on the same machine, is what the application itself costs (JSON,
telebot, SQLAlchemy, PostgreSQL), not HTTP, JSON parsing or gunicorn.
"""
from flask import Flask, request

app = Flask(__name__)


@app.post("/webhook")
def webhook():
    request.get_json(silent=True)
    return "", 200


@app.get("/livez")
@app.get("/health")
def livez():
    """Readiness path that stack_harness.gunicorn_server.GunicornServer polls; /health for bench.compare."""
    return "ok"

"""The floor for the webhook benchmark: Flask with nothing behind ``POST /webhook``.

Whatever the full server's rate falls short of this, under the same gunicorn
shape on the same machine, is what the application itself costs (JSON,
telebot, SQLAlchemy, PostgreSQL), not HTTP parsing or gunicorn.
"""
from flask import Flask

app = Flask(__name__)


@app.post("/webhook")
def webhook():
    return "", 200


@app.get("/livez")
def livez():
    """Readiness path that stack_harness.gunicorn_server.GunicornServer polls."""
    return "ok"

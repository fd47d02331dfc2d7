"""A tiny Flask app for tests/stack_harness/test_gunicorn_server.py."""

import os

from flask import Flask

app = Flask(__name__)


@app.get("/livez")
def livez():
    return "ok"


@app.get("/pid")
def pid():
    print(f"served /pid from worker {os.getpid()}", flush=True)
    return str(os.getpid())

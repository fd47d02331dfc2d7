"""The lean peer: the least a correct webhook can do per ``/start`` on the server's own stack.

Flask under the same gunicorn gthread shape, SQLAlchemy Core on psycopg2:
check the secret, parse the JSON, then ONE prebuilt statement (the ledger
row and the sender's upsert with its flood counter, as two data-modifying
CTEs, like the server's intake), commit, and answer 200 with the reply
riding on the webhook response. Exactly once holds as in the server: a
redelivered update finds its ledger row and gets no second reply.

No ORM, no telebot, no outbox, no hooks: whatever the server spends beyond
this is its own design's cost. Its tables (``lean_schema.sql``) are created
by the benchmark before the workers start, in a database of its own.
"""
from __future__ import annotations

import hmac
import os

from flask import Flask, jsonify, request
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# The user is upserted only if the claim inserted a row, so a redelivery counts nothing.
CLAIM_AND_REMEMBER = text("""
WITH claimed AS (
    INSERT INTO processed_updates (update_id, kind, processed_at)
    VALUES (:update_id, 'message', now())
    ON CONFLICT (update_id) DO NOTHING
    RETURNING update_id
), seen AS (
    INSERT INTO users AS u (id, username, first_name, language_code, created_at, last_seen_at,
                            window_started_at, updates_in_window)
    SELECT :user_id, :username, :first_name, :language_code, now(), now(), now(), 1 FROM claimed
    ON CONFLICT (id) DO UPDATE SET
        username = excluded.username,
        first_name = excluded.first_name,
        language_code = excluded.language_code,
        last_seen_at = excluded.last_seen_at,
        updates_in_window = CASE WHEN u.window_started_at > now() - interval '1 minute'
                                 THEN u.updates_in_window + 1 ELSE 1 END,
        window_started_at = CASE WHEN u.window_started_at > now() - interval '1 minute'
                                 THEN u.window_started_at ELSE excluded.window_started_at END
    RETURNING updates_in_window
)
SELECT EXISTS (SELECT 1 FROM claimed), (SELECT updates_in_window FROM seen)
""")

SECRET = os.environ["WEBHOOK_SECRET"]
# One pooled connection per request thread; the master never connects, so forked workers start empty.
engine = create_engine(
    os.environ["DATABASE_URL"],
    pool_size=int(os.environ.get("GUNICORN_THREADS", "8")), max_overflow=0, pool_timeout=3,
    connect_args={"connect_timeout": 5, "options": "-c statement_timeout=5000"},
)
app = Flask(__name__)


@app.post("/webhook")
def webhook():
    if not hmac.compare_digest(request.headers.get(SECRET_HEADER, ""), SECRET):
        return "", 401
    update = request.get_json(silent=True)
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        return "", 400
    message = update.get("message")
    sender = message.get("from") if isinstance(message, dict) else None
    if not isinstance(sender, dict) or not isinstance(sender.get("id"), int):
        return "", 200  # the lean path handles private messages only
    params = {"update_id": update["update_id"], "user_id": sender["id"], "username": sender.get("username"),
              "first_name": sender.get("first_name") or "", "language_code": sender.get("language_code")}
    try:
        with engine.begin() as connection:
            new, _ = connection.execute(CLAIM_AND_REMEMBER, params).one()
    except DBAPIError:
        return "", 503  # Telegram delivers it again later
    if not new or not str(message.get("text", "")).startswith("/start"):
        return "", 200
    return jsonify(method="sendMessage", chat_id=message["chat"]["id"], text=f"Welcome, {params['first_name']}!")


@app.get("/livez")
def livez():
    return "ok"


@app.get("/health")
def health():
    """Knows the database, as the server's /health does."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except DBAPIError:
        return "database unreachable", 503
    return "ok"

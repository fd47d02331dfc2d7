"""What every chaos module shares: the database and role, the plans, the server's environment, the timeouts."""
from __future__ import annotations

import json
import re

DATABASE = "bot"
SERVER_ROLE = "bot"  # the server connects as an ordinary role, so superuser-reserved slots stay ours
PLANS = [
    {"id": "week", "title": "One week", "stars": 75, "days": 7},
    {"id": "month", "title": "One month", "stars": 250, "days": 30},
]
PLAN_DAYS = {plan["id"]: plan["days"] for plan in PLANS}
WORKERS = 2
START_REPLY = re.compile(r"Welcome, U(\d+)!")
INVITE_MARK = "t.me/"

# Every scenario's server: fast outbox recovery after a crash (lease), no
# flood throttling (the load is many quick users, not a flood), known plans.
BASE_ENV = {
    "WEB_CONCURRENCY": str(WORKERS),
    "FLOOD_LIMIT_PER_MINUTE": "0",
    "TELEGRAM_READ_TIMEOUT": "2",
    "OUTBOX_LEASE_SECONDS": "7",
    "PLANS": json.dumps(PLANS),
}

STEP_TIMEOUT = 60.0  # a payer waits this long for one of their updates to be acknowledged
INVOICE_TIMEOUT = 40.0  # ... and for the invoice the outbox owes them
SETTLE_TIMEOUT = 90.0  # after the load: deliveries drained, outbox caught up, invites sent
HEALTH_503_WITHIN = 2.0
HEALTH_200_WITHIN = 5.0

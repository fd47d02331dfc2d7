"""Invoice payloads: what was sold, to whom, signed, verifiable without a database read.

``p2:<plan>:<days>:<stars>:<user>:<nonce>:<signature>``, where the signature
is an HMAC over the rest. The payload carries the terms of the sale, so a
payment is honoured for what it bought even when its plan has left
``PLANS`` since the invoice was made (a deploy in between). At most 84
bytes, inside Telegram's 128.

Verification tries every key the settings list (the current one, the
previous one during a rotation), so invoices made before a rotation still
verify. Payloads of the first format (``p1:<plan>:<user>:<nonce>:<sig>``)
still verify; they carry no terms, so the plan's current terms apply.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Sequence

from settings.plans import Plan

VERSION = "p2"
PATTERN = re.compile(r"p2:([a-z0-9_]{1,16}):(\d{1,4}):(\d{1,6}):(\d{1,20}):([A-Za-z0-9_-]{8}):([A-Za-z0-9_-]{22})")
FIRST_FORMAT = re.compile(r"p1:([a-z0-9_]{1,16}):(\d{1,20}):([A-Za-z0-9_-]{8}):([A-Za-z0-9_-]{22})")


@dataclass(frozen=True)
class Sale:
    """What an invoice sold. ``days`` and ``stars`` are None for first-format payloads."""

    plan_id: str
    user_id: int
    nonce: str
    days: int | None = None
    stars: int | None = None


def sign(secret: bytes, plan: Plan, user_id: int, nonce: str | None = None) -> str:
    nonce = nonce or secrets.token_urlsafe(6)
    body = f"{VERSION}:{plan.id}:{plan.days}:{plan.stars}:{user_id}:{nonce}"
    return f"{body}:{_signature(secret, body)}"


def verify(keys: Sequence[bytes], payload: str) -> Sale | None:
    """The sale if one of ``keys`` signed the payload, else None."""
    payload = payload or ""
    if match := PATTERN.fullmatch(payload):
        plan_id, days, stars, user_id, nonce, signature = match.groups()
        sale = Sale(plan_id, int(user_id), nonce, int(days), int(stars))
    elif match := FIRST_FORMAT.fullmatch(payload):
        plan_id, user_id, nonce, signature = match.groups()
        sale = Sale(plan_id, int(user_id), nonce)
    else:
        return None
    body = payload.rsplit(":", 1)[0]
    if any(hmac.compare_digest(signature, _signature(key, body)) for key in keys):
        return sale
    return None


def _signature(secret: bytes, body: str) -> str:
    digest = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:22]

"""A cheap structural check of the update kinds we parse, before any work.

Telegram never sends these malformed; anything that fails here is not
Telegram, so it gets a 400 and nothing is written. (A well-formed update that
the parser still chokes on is our bug: it goes to the dead-letter table.)
"""
from __future__ import annotations

Shape = dict[str, object]

USER: Shape = {"id": int, "is_bot": bool, "first_name": str}
CHAT: Shape = {"id": int, "type": str}
MESSAGE: Shape = {"message_id": int, "date": int, "chat": CHAT}
MEMBER: Shape = {"status": str, "user": USER}

REQUIRED: dict[str, Shape] = {
    "message": MESSAGE,
    "callback_query": {"id": str, "from": USER, "chat_instance": str},
    "chat_member": {"chat": CHAT, "from": USER, "date": int, "old_chat_member": MEMBER, "new_chat_member": MEMBER},
    "pre_checkout_query": {"id": str, "from": USER, "currency": str, "total_amount": int, "invoice_payload": str},
    "subscription": {"user": USER, "invoice_payload": str, "state": str},
}
# Optional fields the handlers read: when present they must have this type.
OPTIONAL: dict[str, Shape] = {
    "message": {"from": USER, "text": str, "successful_payment": dict, "refunded_payment": dict},
    "callback_query": {"data": str, "message": dict},
    "chat_member": {"invite_link": {"invite_link": str}},
}
MAX_TEXT = 65536


def problem(kind: str, body: dict) -> str | None:
    """What is wrong with an update of ``kind``, or None."""
    if kind not in REQUIRED:
        return None
    return _check(body, REQUIRED[kind], kind, required=True) or _check(body, OPTIONAL.get(kind, {}), kind,
                                                                       required=False)


def _check(value: dict, shape: Shape, path: str, required: bool) -> str | None:
    for name, expected in shape.items():
        where = f"{path}.{name}"
        if name not in value:
            if required:
                return f"{where} is missing"
            continue
        found = value[name]
        if isinstance(expected, dict):
            if not isinstance(found, dict):
                return f"{where} must be an object"
            issue = _check(found, expected, where, required=True)
        elif expected is int:
            issue = None if type(found) is int and abs(found) < 2**63 else f"{where} must be an integer"
        elif expected is str:
            issue = None if isinstance(found, str) and len(found) <= MAX_TEXT else f"{where} must be a string"
        else:
            issue = None if isinstance(found, expected) else f"{where} has the wrong type"
        if issue:
            return issue
    return None

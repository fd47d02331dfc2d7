"""Builders for Update JSON exactly as Telegram sends it.

Pure functions with no emulator state, so a test can also build an update by
hand (for ``deliver``) or feed one straight to the bot's webhook.  Every
builder's output is valid per the Bot API schema and parses with
``telebot.types.Update.de_json`` (the tests check both).  Users and chats are
passed as their JSON (``user_json(...)``), the way they appear on the wire.
"""

from __future__ import annotations

from .text_format import bot_command_entities

# --- users, chats and members -----------------------------------------------------------------


def user_json(user_id: int, first_name: str = "User", username: str | None = None,
              is_bot: bool = False, last_name: str | None = None) -> dict:
    user = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
    if last_name:
        user["last_name"] = last_name
    if username:
        user["username"] = username
    return user


def private_chat_json(user: dict) -> dict:
    """A user's private chat with the bot: same id as the user."""
    chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
    if user.get("username"):
        chat["username"] = user["username"]
    return chat


def channel_chat_json(chat_id: int, title: str, username: str | None = None) -> dict:
    chat = {"id": chat_id, "type": "channel", "title": title}
    if username:
        chat["username"] = username
    return chat


_ADMINISTRATOR_RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
    "can_edit_stories", "can_delete_stories", "can_post_messages", "can_edit_messages",
)


def chat_member_json(status: str, user: dict, until_date: int = 0) -> dict:
    """A ChatMember of the subtype Telegram uses for ``status``.

    ``creator`` -> ChatMemberOwner, ``administrator`` -> ChatMemberAdministrator
    (with the rights a bot needs to manage a channel), ``member``, ``left``,
    ``kicked`` -> ChatMemberBanned (``until_date`` 0 means forever).
    """
    member = {"status": status, "user": user}
    if status == "creator":
        member["is_anonymous"] = False
    elif status == "administrator":
        member.update({"can_be_edited": False, "is_anonymous": False})
        member.update({right: True for right in _ADMINISTRATOR_RIGHTS})
    elif status == "kicked":
        member["until_date"] = until_date
    elif status not in ("member", "left"):
        raise ValueError(f"unsupported chat member status {status!r}")
    return member


# --- messages ---------------------------------------------------------------------------------


def message_update(update_id: int, message: dict) -> dict:
    return {"update_id": update_id, "message": message}


def text_message(message_id: int, date: int, user: dict, text: str, chat: dict | None = None) -> dict:
    """A text message from a user; ``/commands`` get their ``bot_command`` entities."""
    message = {
        "message_id": message_id,
        "from": user,
        "chat": chat or private_chat_json(user),
        "date": date,
        "text": text,
    }
    entities = bot_command_entities(text)
    if entities:
        message["entities"] = entities
    return message


def text_message_update(update_id: int, message_id: int, date: int, user: dict, text: str,
                        chat: dict | None = None) -> dict:
    return message_update(update_id, text_message(message_id, date, user, text, chat))


def callback_query_update(update_id: int, query_id: str, user: dict, message: dict, data: str,
                          chat_instance: str | None = None) -> dict:
    """A press on an inline button of ``message`` (a message the bot sent)."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": query_id,
            "from": user,
            "message": message,
            "chat_instance": chat_instance or str(message["chat"]["id"]),
            "data": data,
        },
    }


# --- payments ---------------------------------------------------------------------------------


def pre_checkout_query_update(update_id: int, query_id: str, user: dict, currency: str,
                              total_amount: int, invoice_payload: str) -> dict:
    return {
        "update_id": update_id,
        "pre_checkout_query": {
            "id": query_id,
            "from": user,
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": invoice_payload,
        },
    }


def successful_payment_json(charge_id: str, total_amount: int, invoice_payload: str,
                            provider_charge_id: str = "", currency: str = "XTR",
                            subscription_expiration_date: int | None = None,
                            is_first_recurring: bool | None = None) -> dict:
    """A SuccessfulPayment; a subscription payment carries the recurring fields."""
    payment = {
        "currency": currency,
        "total_amount": total_amount,
        "invoice_payload": invoice_payload,
        "telegram_payment_charge_id": charge_id,
        "provider_payment_charge_id": provider_charge_id,
    }
    if subscription_expiration_date is not None:
        payment["subscription_expiration_date"] = subscription_expiration_date
        payment["is_recurring"] = True
        payment["is_first_recurring"] = bool(is_first_recurring)
    return payment


def successful_payment_message(message_id: int, date: int, user: dict, successful_payment: dict) -> dict:
    """The service message in the payer's private chat that confirms a payment."""
    return {
        "message_id": message_id,
        "from": user,
        "chat": private_chat_json(user),
        "date": date,
        "successful_payment": successful_payment,
    }


def successful_payment_update(update_id: int, message_id: int, date: int, user: dict,
                              successful_payment: dict) -> dict:
    return message_update(update_id, successful_payment_message(message_id, date, user, successful_payment))


def refunded_payment_message(message_id: int, date: int, user: dict, refunded_payment: dict) -> dict:
    """The service message in the payer's private chat that reports a refund."""
    return {
        "message_id": message_id,
        "from": user,
        "chat": private_chat_json(user),
        "date": date,
        "refunded_payment": refunded_payment,
    }


def refunded_payment_update(update_id: int, message_id: int, date: int, user: dict,
                            refunded_payment: dict) -> dict:
    return message_update(update_id, refunded_payment_message(message_id, date, user, refunded_payment))


def subscription_update(update_id: int, user: dict, invoice_payload: str, state: str) -> dict:
    """Bot API 10.2: a Stars subscription became ``canceled``, ``active`` or ``failed``."""
    if state not in ("canceled", "active", "failed"):
        raise ValueError(f"unknown subscription state {state!r}")
    return {
        "update_id": update_id,
        "subscription": {"user": user, "invoice_payload": invoice_payload, "state": state},
    }


# --- membership -------------------------------------------------------------------------------


def _chat_member_updated(chat: dict, actor: dict, date: int, old_member: dict, new_member: dict,
                         invite_link: dict | None, via_join_request: bool | None) -> dict:
    updated = {
        "chat": chat,
        "from": actor,
        "date": date,
        "old_chat_member": old_member,
        "new_chat_member": new_member,
    }
    if invite_link is not None:
        updated["invite_link"] = invite_link
    if via_join_request is not None:
        updated["via_join_request"] = via_join_request
    return updated


def chat_member_update(update_id: int, chat: dict, actor: dict, date: int, old_member: dict,
                       new_member: dict, invite_link: dict | None = None,
                       via_join_request: bool | None = None) -> dict:
    """A member's status changed; ``invite_link`` ties a join to the link (and so to a payment)."""
    return {
        "update_id": update_id,
        "chat_member": _chat_member_updated(chat, actor, date, old_member, new_member, invite_link, via_join_request),
    }


def my_chat_member_update(update_id: int, chat: dict, actor: dict, date: int, old_member: dict,
                          new_member: dict) -> dict:
    """The bot's own status changed: blocked by a user, removed from or promoted in a chat."""
    return {
        "update_id": update_id,
        "my_chat_member": _chat_member_updated(chat, actor, date, old_member, new_member, None, None),
    }


def chat_join_request_update(update_id: int, chat: dict, user: dict, date: int,
                             invite_link: dict | None = None) -> dict:
    request = {"chat": chat, "from": user, "user_chat_id": user["id"], "date": date}
    if invite_link is not None:
        request["invite_link"] = invite_link
    return {"update_id": update_id, "chat_join_request": request}


def update_kind(update: dict) -> str:
    """The update's kind: its one field besides ``update_id``."""
    kinds = [key for key in update if key != "update_id"]
    if len(kinds) != 1:
        raise ValueError(f"an Update has exactly one field besides update_id, got {kinds}")
    return kinds[0]

"""Sending, editing and deleting messages; answering callback queries."""

from __future__ import annotations

from .errors import bad_request
from .methods_common import MethodContext, check_can_write, check_length, find_chat, find_message
from .text_format import render_text, utf16_length

MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)


def inline_keyboard(ctx: MethodContext) -> dict | None:
    """The markup a sent Message carries: only inline keyboards are returned by Telegram."""
    markup = ctx.get("reply_markup")
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return None
    for row in markup["inline_keyboard"]:
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode("utf-8")) <= MAX_CALLBACK_DATA_BYTES:
                raise bad_request("BUTTON_DATA_INVALID")
            if not button.get("text"):
                raise bad_request(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )
    return markup if markup["inline_keyboard"] else None


def _text_and_entities(ctx: MethodContext) -> tuple[str, list[dict]]:
    text, entities = render_text(ctx.params["text"], ctx.get("parse_mode"))
    explicit_entities = ctx.get("entities")
    if explicit_entities:
        entities = explicit_entities
    for entity in entities:
        if entity["offset"] + entity["length"] > utf16_length(text):
            raise bad_request("can't parse entities: entity ends beyond the end of the text")
    return text, entities


def send_message(ctx: MethodContext) -> dict:
    chat = find_chat(ctx, ctx.params["chat_id"])
    check_can_write(ctx, chat)
    text, entities = _text_and_entities(ctx)
    return ctx.state.store_message(
        chat, ctx.bot, text=text, entities=entities or None, reply_markup=inline_keyboard(ctx)
    )


def send_any_message(ctx: MethodContext) -> dict:
    """Fallback for the other send* methods (sendPhoto...): a Message with the caption, if any."""
    chat = find_chat(ctx, ctx.params["chat_id"])
    check_can_write(ctx, chat)
    return ctx.state.store_message(chat, ctx.bot, caption=ctx.get("caption"), reply_markup=inline_keyboard(ctx))


def _message_to_edit(ctx: MethodContext) -> dict | None:
    """The stored message addressed by chat_id + message_id, or None for an inline message."""
    if ctx.get("inline_message_id"):
        return None
    if ctx.get("chat_id") is None or ctx.get("message_id") is None:
        raise bad_request("message identifier is not specified")
    chat = find_chat(ctx, ctx.params["chat_id"])
    message = find_message(ctx, chat, ctx.params["message_id"], "message to edit not found")
    if message["message_id"] not in chat.bot_message_ids:
        raise bad_request("message can't be edited")
    return message


def edit_message_text(ctx: MethodContext) -> dict | bool:
    message = _message_to_edit(ctx)
    text, entities = _text_and_entities(ctx)
    if message is None:
        return True
    if "text" not in message:
        raise bad_request("there is no text in the message to edit")
    markup = inline_keyboard(ctx)
    current = (message.get("text"), message.get("entities") or [], message.get("reply_markup"))
    if current == (text, entities, markup):
        raise bad_request(NOT_MODIFIED)
    _apply_edit(ctx, message, text=text, entities=entities or None, reply_markup=markup)
    return message


def edit_message_reply_markup(ctx: MethodContext) -> dict | bool:
    message = _message_to_edit(ctx)
    markup = inline_keyboard(ctx)
    if message is None:
        return True
    if message.get("reply_markup") == markup:
        raise bad_request(NOT_MODIFIED)
    _apply_edit(ctx, message, reply_markup=markup)
    return message


def _apply_edit(ctx: MethodContext, message: dict, **fields) -> None:
    """Replace fields in place (None removes one) and stamp edit_date."""
    for name, value in fields.items():
        if value is None:
            message.pop(name, None)
        else:
            message[name] = value
    message["edit_date"] = ctx.now()


def delete_message(ctx: MethodContext) -> bool:
    chat = find_chat(ctx, ctx.params["chat_id"])
    message = find_message(ctx, chat, ctx.params["message_id"], "message to delete not found")
    if message["message_id"] not in chat.bot_message_ids and chat.private_user is None:
        raise bad_request("message can't be deleted")
    del chat.messages[message["message_id"]]
    chat.bot_message_ids.discard(message["message_id"])
    return True


def answer_callback_query(ctx: MethodContext) -> bool:
    query = ctx.state.callback_queries.get(ctx.params["callback_query_id"])
    if query is None or query.answered.is_set():
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    check_length(ctx.get("text") or "", 0, MAX_CALLBACK_ANSWER_LENGTH, "MESSAGE_TOO_LONG")
    query.ok = True
    query.answered.set()
    return True


HANDLERS = {
    "sendMessage": send_message,
    "editMessageText": edit_message_text,
    "editMessageReplyMarkup": edit_message_reply_markup,
    "deleteMessage": delete_message,
    "answerCallbackQuery": answer_callback_query,
}

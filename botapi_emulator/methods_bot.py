"""Methods about the bot itself: identity, webhook, commands."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from .errors import bad_request, conflict
from .methods_common import Described, MethodContext, check_length

_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
MAX_COMMANDS = 100


def get_me(ctx: MethodContext) -> dict:
    return {
        **ctx.bot.to_json(),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


def set_webhook(ctx: MethodContext) -> Described:
    """Telegram requires HTTPS on ports 443/80/88/8443; the emulator also allows plain HTTP anywhere."""
    url = ctx.params["url"]
    if not url:
        return _delete_webhook(ctx)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad_request("bad webhook: invalid webhook URL specified")
    secret = ctx.get("secret_token") or None
    if secret is not None and not _SECRET_TOKEN.fullmatch(secret):
        raise bad_request("secret token contains unallowed characters")
    max_connections = ctx.get("max_connections", 40)
    if not 1 <= max_connections <= 100:
        raise bad_request("bad webhook: max_connections must be between 1 and 100")
    webhook = ctx.state.webhook
    allowed_updates = ctx.get("allowed_updates")
    unchanged = (webhook.url, webhook.secret_token, webhook.max_connections) == (url, secret, max_connections) and (
        allowed_updates is None or allowed_updates == webhook.allowed_updates
    )
    if webhook.url != url:
        webhook.last_error_date = webhook.last_error_message = None
    webhook.url, webhook.secret_token, webhook.max_connections = url, secret, max_connections
    webhook.ip_address = ctx.get("ip_address") or "127.0.0.1"
    if allowed_updates is not None:  # not given: the previous setting stays, as documented
        webhook.allowed_updates = list(allowed_updates)
    if ctx.get("drop_pending_updates"):
        webhook.drop_generation += 1
    return Described(True, "Webhook is already set" if unchanged else "Webhook was set")


def delete_webhook(ctx: MethodContext) -> Described:
    return _delete_webhook(ctx)


def _delete_webhook(ctx: MethodContext) -> Described:
    webhook = ctx.state.webhook
    was_set = bool(webhook.url)
    webhook.url, webhook.secret_token = "", None
    if ctx.get("drop_pending_updates"):
        webhook.drop_generation += 1
    return Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")


def get_webhook_info(ctx: MethodContext) -> dict:
    return ctx.state.webhook.to_json(ctx.state.pending_update_count)


def get_updates(ctx: MethodContext) -> list:
    """The emulator only delivers by webhook; polling while one is set is refused like on Telegram."""
    if ctx.state.webhook.url:
        raise conflict(
            "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
        )
    return []


def commands_key(scope: dict | None = None, language_code: str | None = None) -> str:
    """Commands are kept per (scope, language), like Telegram's command lists."""
    return json.dumps([scope or {"type": "default"}, language_code or ""], sort_keys=True)


def _commands_key(ctx: MethodContext) -> str:
    return commands_key(ctx.get("scope"), ctx.get("language_code"))


def set_my_commands(ctx: MethodContext) -> bool:
    commands = ctx.params["commands"]
    if len(commands) > MAX_COMMANDS:
        raise bad_request("too many commands")
    for command in commands:
        if not _COMMAND.fullmatch(command["command"]):
            raise bad_request("BOT_COMMAND_INVALID")
        check_length(command["description"], 1, 256, "command description is empty or too long")
    ctx.state.commands[_commands_key(ctx)] = [
        {"command": command["command"], "description": command["description"]} for command in commands
    ]
    return True


def get_my_commands(ctx: MethodContext) -> list:
    return ctx.state.commands.get(_commands_key(ctx), [])


def delete_my_commands(ctx: MethodContext) -> bool:
    ctx.state.commands.pop(_commands_key(ctx), None)
    return True


HANDLERS = {
    "getMe": get_me,
    "setWebhook": set_webhook,
    "deleteWebhook": delete_webhook,
    "getWebhookInfo": get_webhook_info,
    "getUpdates": get_updates,
    "setMyCommands": set_my_commands,
    "getMyCommands": get_my_commands,
    "deleteMyCommands": delete_my_commands,
}

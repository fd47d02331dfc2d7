"""Chats and members: invite links, bans, member lookups, leaving."""

from __future__ import annotations

from .errors import bad_request
from .membership import change_status, member_json
from .methods_common import MethodContext, find_chat, find_managed_chat, find_user
from .model import ACTIVE_MEMBER_STATUSES, Chat, InviteLink, User
from .updates import chat_member_json, my_chat_member_update

MAX_LINK_NAME = 32
MAX_MEMBER_LIMIT = 99999
FOREVER_BAN_MARGIN = (30, 366 * 86400)  # bans shorter than 30 s or longer than 366 days are forever


# --- invite links -----------------------------------------------------------------------------


def _check_link_options(ctx: MethodContext, name: str | None, expire_date: int | None,
                        member_limit: int | None, creates_join_request: bool) -> None:
    if name is not None and len(name) > MAX_LINK_NAME:
        raise bad_request("invite link name is too long")
    if member_limit is not None and not 1 <= member_limit <= MAX_MEMBER_LIMIT:
        raise bad_request("USAGE_LIMIT_INVALID")
    if creates_join_request and member_limit is not None:
        raise bad_request("member limit can't be specified for links requiring administrator approval")
    if expire_date is not None and expire_date <= ctx.now():
        raise bad_request("EXPIRE_DATE_INVALID")


def _link_options(ctx: MethodContext, current: InviteLink | None = None) -> dict:
    """Options from the call; on edit, omitted ones keep their current value."""
    def option(name: str, default):
        return ctx.get(name, getattr(current, name) if current else default)

    expire_date = option("expire_date", None) or None  # 0 means "never" on Telegram
    options = {
        "name": option("name", None),
        "expire_date": expire_date,
        "member_limit": option("member_limit", None),
        "creates_join_request": bool(option("creates_join_request", False)),
    }
    if current is not None and "member_limit" not in ctx.params and options["creates_join_request"]:
        options["member_limit"] = None  # switching to join requests drops the limit
    _check_link_options(ctx, **options)
    return options


def _find_link(ctx: MethodContext, chat: Chat) -> InviteLink:
    link = ctx.state.invite_links.get(ctx.params["invite_link"])
    if link is None or link.chat_id != chat.id:
        raise bad_request("INVITE_HASH_INVALID")
    return link


def create_chat_invite_link(ctx: MethodContext) -> dict:
    chat = find_managed_chat(ctx, ctx.params["chat_id"])
    link = ctx.state.new_invite_link(chat, **_link_options(ctx))
    return link.to_json(ctx.bot)


def edit_chat_invite_link(ctx: MethodContext) -> dict:
    chat = find_managed_chat(ctx, ctx.params["chat_id"])
    link = _find_link(ctx, chat)
    if link.is_revoked:
        raise bad_request("INVITE_HASH_EXPIRED")
    for name, value in _link_options(ctx, current=link).items():
        setattr(link, name, value)
    return link.to_json(ctx.state.users[link.creator_id])


def revoke_chat_invite_link(ctx: MethodContext) -> dict:
    chat = find_managed_chat(ctx, ctx.params["chat_id"])
    link = _find_link(ctx, chat)
    link.is_revoked = True
    if link.is_primary:  # Telegram replaces a revoked primary link at once
        ctx.state.new_invite_link(chat, is_primary=True)
    return link.to_json(ctx.state.users[link.creator_id])


def export_chat_invite_link(ctx: MethodContext) -> str:
    chat = find_managed_chat(ctx, ctx.params["chat_id"])
    for link in ctx.state.invite_links.values():
        if link.chat_id == chat.id and link.is_primary and not link.is_revoked:
            link.is_revoked = True
    return ctx.state.new_invite_link(chat, is_primary=True).url


# --- bans and membership -------------------------------------------------------------------


def _target_member(ctx: MethodContext) -> tuple[Chat, User]:
    chat = find_managed_chat(ctx, ctx.params["chat_id"])
    user = find_user(ctx, ctx.params["user_id"], "PARTICIPANT_ID_INVALID")
    status = chat.status_of(user.id, ctx.now())
    if status == "creator":
        raise bad_request("can't remove chat owner")
    if status == "administrator":
        raise bad_request("user is an administrator of the chat")
    return chat, user


def _ban_end(ctx: MethodContext) -> int:
    until_date = ctx.get("until_date") or 0
    shortest, longest = FOREVER_BAN_MARGIN
    if until_date and shortest <= until_date - ctx.now() <= longest:
        return until_date
    return 0


def ban_chat_member(ctx: MethodContext) -> bool:
    """Removes the user and keeps them out (invite links refuse them) until unbanned."""
    chat, user = _target_member(ctx)
    was_banned = chat.status_of(user.id, ctx.now()) == "kicked"
    announce = change_status(ctx.state, chat, user, "kicked", ctx.bot, until_date=_ban_end(ctx))
    if not was_banned:
        ctx.emit(announce)
    return True


def unban_chat_member(ctx: MethodContext) -> bool:
    """Lifts a ban; without only_if_banned it also removes a current member (Telegram's behaviour)."""
    chat, user = _target_member(ctx)
    status = chat.status_of(user.id, ctx.now())
    is_member = status in ACTIVE_MEMBER_STATUSES
    if status == "kicked" or (is_member and not ctx.get("only_if_banned")):
        ctx.emit(change_status(ctx.state, chat, user, "left", ctx.bot))
    return True


def get_chat_member(ctx: MethodContext) -> dict:
    chat = find_chat(ctx, ctx.params["chat_id"])
    user = ctx.state.users.get(ctx.params["user_id"])
    if user is None:
        raise bad_request("user not found")
    if chat.private_user is not None:
        if user.id not in (chat.private_user.id, ctx.bot.id):
            raise bad_request("user not found")
        return chat_member_json("member", user.to_json())
    if chat.type == "channel" and chat.status_of(ctx.bot.id, ctx.now()) not in ("administrator", "creator"):
        raise bad_request("member list is inaccessible")
    return member_json(ctx.state, chat, user)


def get_chat_member_count(ctx: MethodContext) -> int:
    chat = find_chat(ctx, ctx.params["chat_id"])
    if chat.private_user is not None:
        return 2
    return sum(1 for user_id in chat.members if chat.is_member(user_id, ctx.now()))


def get_chat_administrators(ctx: MethodContext) -> list:
    chat = find_managed_chat(ctx, ctx.params["chat_id"])
    return [
        member_json(ctx.state, chat, ctx.state.users[user_id])
        for user_id in chat.members
        if chat.status_of(user_id, ctx.now()) in ("creator", "administrator")
    ]


def get_chat(ctx: MethodContext) -> dict:
    chat = find_chat(ctx, ctx.params["chat_id"])
    full_info = {
        **chat.to_json(),
        "accent_color_id": 0,
        "max_reaction_count": 11,
        "accepted_gift_types": {
            "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
            "premium_subscription": False, "gifts_from_channels": False,
        },
    }
    if chat.private_user is None:
        primary = next((link for link in ctx.state.invite_links.values()
                        if link.chat_id == chat.id and link.is_primary and not link.is_revoked), None)
        if primary is not None:
            full_info["invite_link"] = primary.url
    return full_info


def leave_chat(ctx: MethodContext) -> bool:
    chat = find_chat(ctx, ctx.params["chat_id"])
    if chat.private_user is not None:
        raise bad_request("chat member status can't be changed in private chats")
    if not chat.is_member(ctx.bot.id, ctx.now()):
        raise bad_request("bot is not a member of the chat")
    old_member = member_json(ctx.state, chat, ctx.bot)
    ctx.state.set_status(chat, ctx.bot.id, "left")
    new_member = member_json(ctx.state, chat, ctx.bot)
    chat_json, bot_json, date = chat.to_json(), ctx.bot.to_json(), ctx.now()
    ctx.emit(lambda update_id: my_chat_member_update(update_id, chat_json, bot_json, date, old_member, new_member))
    return True


# --- join requests ----------------------------------------------------------------------------


def _pending_request_link(ctx: MethodContext, chat: Chat, user_id: int) -> InviteLink:
    for link in ctx.state.invite_links.values():
        if link.chat_id == chat.id and user_id in link.pending_join_requests:
            return link
    raise bad_request("HIDE_REQUESTER_MISSING")


def approve_chat_join_request(ctx: MethodContext) -> bool:
    chat = find_managed_chat(ctx, ctx.params["chat_id"])
    user = find_user(ctx, ctx.params["user_id"], "USER_ID_INVALID")
    link = _pending_request_link(ctx, chat, user.id)
    link.pending_join_requests.discard(user.id)
    ctx.emit(change_status(ctx.state, chat, user, "member", user, joined_via=link, via_join_request=True))
    return True


def decline_chat_join_request(ctx: MethodContext) -> bool:
    chat = find_managed_chat(ctx, ctx.params["chat_id"])
    user = find_user(ctx, ctx.params["user_id"], "USER_ID_INVALID")
    _pending_request_link(ctx, chat, user.id).pending_join_requests.discard(user.id)
    return True


HANDLERS = {
    "createChatInviteLink": create_chat_invite_link,
    "editChatInviteLink": edit_chat_invite_link,
    "revokeChatInviteLink": revoke_chat_invite_link,
    "exportChatInviteLink": export_chat_invite_link,
    "banChatMember": ban_chat_member,
    "unbanChatMember": unban_chat_member,
    "getChatMember": get_chat_member,
    "getChatMemberCount": get_chat_member_count,
    "getChatAdministrators": get_chat_administrators,
    "getChat": get_chat,
    "leaveChat": leave_chat,
    "approveChatJoinRequest": approve_chat_join_request,
    "declineChatJoinRequest": decline_chat_join_request,
}

"""Channel membership rules shared by the bot's methods and users' actions.

Why a module of its own: a join through an invite link (a user action) and
a ban or an approved join request (bot methods) must obey the same rules and
announce themselves with the same ``chat_member`` update.
"""

from __future__ import annotations

from .methods_common import UpdateBuilder
from .model import Chat, InviteLink, User
from .state import TelegramState
from .updates import chat_member_json, chat_member_update

# Why a join through a link is refused; values are what JoinResult.reason holds.
LINK_UNKNOWN = "link_unknown"
LINK_REVOKED = "link_revoked"
LINK_EXPIRED = "link_expired"
MEMBER_LIMIT_REACHED = "member_limit_reached"
BANNED = "banned"
ALREADY_MEMBER = "already_member"
BOT_NOT_ADMIN = "bot_not_admin"


def join_refusal(state: TelegramState, link: InviteLink | None, user: User) -> str | None:
    """Why ``user`` may not join through ``link`` right now, or None if they may."""
    if link is None:
        return LINK_UNKNOWN
    now = state.clock.now()
    chat = state.chats[link.chat_id]
    if link.is_revoked:
        return LINK_REVOKED
    if link.is_expired(now):
        return LINK_EXPIRED
    status = chat.status_of(user.id, now)
    if status == "kicked":
        return BANNED
    if chat.is_member(user.id, now):
        return ALREADY_MEMBER
    if chat.status_of(link.creator_id, now) not in ("administrator", "creator"):
        return BOT_NOT_ADMIN  # links of an admin who lost the rights stop working
    if link.member_limit is not None and state.members_joined_via(link) >= link.member_limit:
        return MEMBER_LIMIT_REACHED
    return None


def member_json(state: TelegramState, chat: Chat, user: User) -> dict:
    now = state.clock.now()
    status = chat.status_of(user.id, now)
    membership = chat.members.get(user.id)
    until_date = membership.until_date if membership is not None and status == "kicked" else 0
    return chat_member_json(status, user.to_json(), until_date)


def change_status(state: TelegramState, chat: Chat, user: User, new_status: str, actor: User,
                  joined_via: InviteLink | None = None, until_date: int = 0,
                  via_join_request: bool | None = None) -> UpdateBuilder:
    """Set a member's status and return the builder of the chat_member update announcing it."""
    old_member = member_json(state, chat, user)
    state.set_status(chat, user.id, new_status, joined_via.url if joined_via else None, until_date)
    new_member = member_json(state, chat, user)
    invite_link = joined_via.to_json(state.users[joined_via.creator_id]) if joined_via else None
    chat_json, actor_json, date = chat.to_json(), actor.to_json(), state.clock.now()
    return lambda update_id: chat_member_update(
        update_id, chat_json, actor_json, date, old_member, new_member, invite_link, via_join_request
    )

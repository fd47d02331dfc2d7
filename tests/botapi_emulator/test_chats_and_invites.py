"""Channel membership: invite links and their limits, bans, join requests, and the chat_member updates they cause."""

from __future__ import annotations

from tests.botapi_emulator.bot_calls import CHANNEL, assert_bad_request, call, ok_result, set_webhook


def test_member_limit_counts_current_members_and_reopens_after_leave(telegram, receiver):
    set_webhook(telegram, receiver, allowed_updates=["message", "chat_member"])
    link = ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL, name="order 42", member_limit=1)
    alice, bob = telegram.user(81, first_name="Alice"), telegram.user(82, first_name="Bob")

    first = telegram.join_via_link(alice, link["invite_link"])
    assert first.joined
    update = first.update["chat_member"]
    assert update["invite_link"]["invite_link"] == link["invite_link"]
    assert update["new_chat_member"]["status"] == "member" and update["old_chat_member"]["status"] == "left"

    assert telegram.join_via_link(bob, link["invite_link"]).reason == "member_limit_reached"
    telegram.leave(alice)
    assert telegram.join_via_link(bob, link["invite_link"]).joined
    assert set(telegram.members()) >= {bob.id} and alice.id not in telegram.members()


def test_revoked_and_expired_links_refuse_joins(telegram, receiver):
    set_webhook(telegram, receiver)
    revoked = ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL)
    result = ok_result(telegram, "revokeChatInviteLink", chat_id=CHANNEL, invite_link=revoked["invite_link"])
    assert result["is_revoked"] is True
    assert telegram.join_via_link(telegram.user(91), revoked["invite_link"]).reason == "link_revoked"

    expiring = ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL, expire_date=telegram.now() + 60)
    telegram.advance_time(61)
    assert telegram.join_via_link(telegram.user(91), expiring["invite_link"]).reason == "link_expired"


def test_invite_link_option_rules(telegram):
    assert_bad_request(call(telegram, "createChatInviteLink", chat_id=CHANNEL, name="n" * 33), "name")
    assert_bad_request(call(telegram, "createChatInviteLink", chat_id=CHANNEL, member_limit=0), "USAGE_LIMIT_INVALID")
    both = call(telegram, "createChatInviteLink", chat_id=CHANNEL, member_limit=1, creates_join_request=True)
    assert_bad_request(both, "member limit")


def test_ban_and_unban(telegram, receiver):
    set_webhook(telegram, receiver, allowed_updates=["chat_member"])
    link = ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL)["invite_link"]
    carol = telegram.user(101)
    telegram.join_via_link(carol, link)

    ok_result(telegram, "unbanChatMember", chat_id=CHANNEL, user_id=101, only_if_banned=True)
    assert telegram.member_status(carol) == "member"

    ok_result(telegram, "banChatMember", chat_id=CHANNEL, user_id=101)
    assert ok_result(telegram, "getChatMember", chat_id=CHANNEL, user_id=101)["status"] == "kicked"
    assert telegram.join_via_link(carol, link).reason == "banned"
    ok_result(telegram, "unbanChatMember", chat_id=CHANNEL, user_id=101, only_if_banned=True)
    assert telegram.join_via_link(carol, link).joined

    ok_result(telegram, "unbanChatMember", chat_id=CHANNEL, user_id=101)  # plain unban removes a member
    assert telegram.member_status(carol) == "left"
    assert_bad_request(call(telegram, "getChatMember", chat_id=CHANNEL, user_id=999999), "user not found")
    assert_bad_request(call(telegram, "banChatMember", chat_id=CHANNEL, user_id=999999), "PARTICIPANT_ID_INVALID")

    # The bot's own bans and unbans come back as chat_member updates (delivered in the background).
    changes = [update["chat_member"] for _, update in receiver.wait_for(5)]
    transitions = sorted((c["old_chat_member"]["status"], c["new_chat_member"]["status"]) for c in changes)
    assert transitions == sorted([("left", "member"), ("member", "kicked"), ("kicked", "left"),
                                  ("left", "member"), ("member", "left")])
    ban = next(c for c in changes if c["new_chat_member"]["status"] == "kicked")
    assert ban["from"]["id"] == telegram.bot_user.id


def test_join_request_link_needs_approval(telegram, receiver):
    set_webhook(telegram, receiver, allowed_updates=["chat_join_request", "chat_member"])
    link = ok_result(telegram, "createChatInviteLink", chat_id=CHANNEL, creates_join_request=True)
    result = telegram.join_via_link(telegram.user(102), link["invite_link"])
    assert not result.joined and result.reason == "join_request_sent"
    assert result.update["chat_join_request"]["invite_link"]["pending_join_request_count"] == 1
    ok_result(telegram, "approveChatJoinRequest", chat_id=CHANNEL, user_id=102)
    approved = receiver.wait_for(2)[1][1]["chat_member"]
    assert approved["via_join_request"] is True and approved["invite_link"]["invite_link"] == link["invite_link"]
    assert telegram.member_status(102) == "member"
    assert_bad_request(call(telegram, "approveChatJoinRequest", chat_id=CHANNEL, user_id=102), "HIDE_REQUESTER_MISSING")

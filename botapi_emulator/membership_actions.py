"""Channel membership actions: users joining through invite links (or asking to) and leaving."""

from __future__ import annotations

from .action_base import ActionBase, UserRef
from .action_results import ActionResult, JoinResult
from .membership import change_status, join_refusal
from .updates import chat_join_request_update

JOIN_REQUEST_SENT = "join_request_sent"


class MembershipActions(ActionBase):
    """Mixed into UserActions: join_via_link and leave."""

    def join_via_link(self, user: UserRef, invite_link: str | dict) -> JoinResult:
        """The user opens an invite link: joins (chat_member with the link), is refused, or requests to join."""
        self._require_webhook()
        url = invite_link["invite_link"] if isinstance(invite_link, dict) else invite_link
        with self.state.lock:
            joiner = self._user(user)
            link = self.state.invite_links.get(url)
            refusal = join_refusal(self.state, link, joiner)
            if refusal is not None:
                return JoinResult(joined=False, reason=refusal)
            chat = self.state.chats[link.chat_id]
            if link.creates_join_request:
                link.pending_join_requests.add(joiner.id)
                update = chat_join_request_update(
                    self.delivery.allocate_update_id(), chat.to_json(), joiner.to_json(), self.state.clock.now(),
                    link.to_json(self.state.users[link.creator_id]),
                )
                joined, reason = False, JOIN_REQUEST_SENT
            else:
                announce = change_status(self.state, chat, joiner, "member", joiner, joined_via=link)
                update = announce(self.delivery.allocate_update_id())
                joined, reason = True, None
        return JoinResult(joined, reason, update, self.delivery.deliver(update))

    def leave(self, user: UserRef, chat_id: int | None = None) -> ActionResult:
        """The user leaves the channel (its invite link's member_limit frees a place)."""
        self._require_webhook()
        with self.state.lock:
            leaver = self._user(user)
            chat = self.state.chats[chat_id if chat_id is not None else self.state.channel_id]
            if not chat.is_member(leaver.id, self.state.clock.now()):
                raise ValueError(f"user {leaver.id} is not a member of chat {chat.id}")
            update = change_status(self.state, chat, leaver, "left", leaver)(self.delivery.allocate_update_id())
        return self._deliver(update)

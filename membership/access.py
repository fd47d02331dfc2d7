"""Giving and taking access: each change is an entitlement row, and its consequences.

Consequences follow the derived expiry, not the event: a refund that leaves
other paid days changes the end date and says so; one that leaves nothing
ends access now, closes the member's unused links and removes them from the
channel. Admins hear about what needs them.
"""
from __future__ import annotations

from sqlalchemy.orm import Session

from membership import entitlements, invites, members, subscriptions
from membership.entitlements import AccessChange
from models.entitlement import GRANT, REVOKE
from models.membership import Membership
from settings import Settings


def grant(session: Session, admin_id: int, user_id: int, days: int) -> Membership:
    """An admin's grant: days added like a payment's, and an invite."""
    entitlements.add(session, user_id, GRANT, days=days, note=f"grant by admin {admin_id}")
    invites.queue(session, user_id, reason=f"grant:{admin_id}")
    return members.get(session, user_id)


def revoke(session: Session, settings: Settings, admin_id: int, user_id: int) -> bool:
    """An admin's revocation: access ends now; False if the user never had a membership."""
    change = entitlements.add(session, user_id, REVOKE, note=f"revoked by admin {admin_id}")
    if change is None:
        return False
    subscriptions.stop_renewals(session, user_id)
    end_access(session, settings, change, notice="Your access to the channel has been revoked by an admin.")
    return True


def end_access(session: Session, settings: Settings, change: AccessChange, *, notice: str) -> None:
    """Access is gone: no unused link may let them in, and out of the channel they go."""
    invites.revoke_outstanding(session, settings, change.user_id)
    record = members.get(session, change.user_id)
    record.removed_for = record.expires_at  # the sweep has nothing left to do for this expiry
    members.queue_removal(session, change.user_id, notice=notice)

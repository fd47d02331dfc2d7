"""Every outbox job kind of the membership domain and the runner that performs it.

Registered here, explicitly and in one place, and handed to the outbox
sender by the app factory: a process sends every kind of job it may find in
the table, whatever it imported.
"""
from __future__ import annotations

from bot_outbox.runners import JobRunner, RunnerEntry
from membership import broadcasts, invites, members, refunds, subscriptions

RUNNERS: dict[str, RunnerEntry] = {
    invites.INVITE_JOB: JobRunner(invites.run_invite, on_give_up=invites.give_up_invite),
    members.REMOVAL_JOB: members.run_removal,
    refunds.REFUND_JOB: JobRunner(refunds.run_refund, on_give_up=refunds.give_up_refund),
    subscriptions.SUBSCRIPTION_LINK_JOB: subscriptions.run_subscription_link,
    broadcasts.BROADCAST_JOB: JobRunner(broadcasts.run_broadcast_message,
                                        on_give_up=broadcasts.give_up_broadcast_message),
}

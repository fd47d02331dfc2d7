"""What every inbound update goes through around its handler, in the update's one transaction.

- ``shape``: a cheap structural check before any work (400 for what is not Telegram);
- ``ledger``: exactly-once by ``update_id``;
- ``users``: who sent it, with the flood counter, in one upsert;
- ``flood``: which updates the per-sender flood limit throttles;
- ``intake``: the ledger claim and the user upsert as one statement;
- ``replies``: the calls a handler asks for: one may ride on the webhook answer, the rest go to the outbox;
- ``dead_letters``: quarantine for updates whose handler raised.
"""

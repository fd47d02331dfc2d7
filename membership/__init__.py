"""The product: selling access to a private channel for Telegram Stars.

- ``billing``: invoices, pre-checkout verdicts, exactly-once credit, refunds;
- ``invoice_payload``: signed payloads, verifiable without a database read;
- ``members``: who has access and until when; removal from the channel;
- ``invites``: one-time invite links, and who joined through them;
- ``checkout``: payers on their way, whom the sweep spares;
- ``admin``: figures, grants, revocations, refunds;
- ``sweep``: reminders before expiry, removal after it, each exactly once;
- ``reconcile``: Telegram's Stars ledger against ours;
- ``job_runners``: every outbox job kind of this domain and its runner.

Every function takes the session and leaves the commit to its caller.
"""

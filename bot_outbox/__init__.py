"""Every call the server owes Telegram, delivered after commit and never while holding a connection.

- ``jobs``: the outbox table's side: enqueue in the caller's transaction, claim with a lease, settle;
- ``runners``: how a job is performed (plain calls here; domain runners are registered explicitly);
- ``sender``: the per-worker sender threads: claim, call, settle, retry;
- ``pacing``: Telegram's overall rate, shared by the senders;
- ``client``: the Bot API client: a timeout on every call, keep-alive per thread, no token in errors.
"""

"""One gunicorn worker's life: what it starts after fork, runs on timers, and stops at exit.

- ``lifecycle``: per-process pools, background threads, early release on SIGTERM;
- ``timers``: in-process periodic tasks (no platform cron needed);
- ``periodic_jobs``: what the timers run: ledger pruning, the expiry sweep, reconciliation.
"""

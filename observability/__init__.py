"""What operators see: Prometheus metrics, log lines without the token, stuck-thread stacks.

- ``metrics``: counters and histograms, merged across gunicorn workers;
- ``logs``: one format for every process, the bot token scrubbed from every line;
- ``watchdog``: which update each thread is handling, stuck requests, stack dumps.
"""

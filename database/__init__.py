"""The database as the server uses it: engines, limits, outages, health, migrations.

- ``engine``: pool options from the settings, server-side time limits, idle pings;
- ``deadline``: a client-side deadline on every round trip (a frozen server);
- ``errors``: what counts as an outage (503) as opposed to a bug (dead letter);
- ``probe``: /health's check on its own connection, the outage breaker, pool timeouts;
- ``background``: how threads of our own get a session (own app context, bounded);
- ``fused_begin``: a transaction whose BEGIN travels with its first statement (one round trip fewer);
- ``upsert``: INSERT ... ON CONFLICT built once per dialect;
- ``migrations``: Flask-Migrate, and the schema brought to head at start.
"""

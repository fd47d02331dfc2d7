"""Running the real stack on this machine, for tests, benchmarks and soaks.

Throwaway PostgreSQL clusters, real gunicorn started from a Procfile line,
Telegram's delivery behaviour and the chaos scenarios. Telegram itself is
played by ``botapi_emulator``. Nothing here is imported by the server.
"""

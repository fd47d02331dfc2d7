"""The local sandbox: the whole bot on a laptop, with no token and no tunnel, in a browser.

The README's first command with no ``BOT_TOKEN`` (on the embedded SQLite
database) starts local sandbox mode (``settings/sandbox.py``): the server on
127.0.0.1, and the Bot API emulator (``botapi_emulator``) as its Telegram,
with the webhook, a generated secret and a demo channel wired to it. The page
at ``/`` (``routes/sandbox.py``) is a Telegram client for test users and an
admin view of the server; it drives the real webhook through the emulator and
never calls a handler itself.

Where the emulator runs, and why: in a process of its own that the gunicorn
master starts (``launcher``, from ``gunicorn.conf.py``'s ``on_starting``) and
stops (``on_exit``). Its state is Telegram's, so it must outlive workers,
which gunicorn recycles (``max_requests``, a timeout kill) and which would
each hold a different Telegram if it ran inside them. Running it on threads
inside the master would put threads in a process that forks workers at any
time, and a fork taken while one of them holds a lock deadlocks the child.
A child process has neither problem; the workers and the page reach it over
HTTP at ``settings.telegram_api_url``, the bot through its Bot API and the
page through its control surface (``emulator_control``). The child watches
its parent and exits with it, even after a ``kill -9`` of the master.

- ``telegram_process``: the emulator's process (``python -m local_sandbox.telegram_process``);
- ``launcher``: start it, wire the webhook and the command menu, stop it; what is printed;
- ``emulator_control``: the page's calls to the emulator's control surface, with timeouts;
- ``admin_view``: what the admin view reads from the database;
- ``templates/``, ``static/``: the page (plain HTML, CSS and JavaScript; no build step).
"""

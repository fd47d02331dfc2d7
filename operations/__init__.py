"""What the operator commands do; ``cli.py`` only lists them.

- ``doctor``: the whole setup checked in one command, one line per check;
- ``export``: members and payments as CSV for the owner;
- ``stacks``: every worker of the running server dumps its threads;
- ``telegram_setup``: the webhook URL, its registration and the command menu.

An entry-point package: it may use every layer below, and nothing below uses it.
"""

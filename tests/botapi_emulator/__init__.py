"""The Bot API emulator's own contract, tested over real HTTP.

A tiny webhook receiver (``webhook_receiver``) stands in for the bot: it
records what Telegram (the emulator) sends and answers as each test scripts
it.  Nothing sleeps to synchronise: the emulator's actions are synchronous,
and waits use conditions with deadlines.
"""

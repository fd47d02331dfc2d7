"""The comparison's peers (``python -m bench.compare``): small servers under the same load as ours.

Each one is started by ``bench/peers/peers.procfile`` through the same harness
as the real server, under ``bench/peers/gunicorn.conf.py``. They read their
settings from the environment at import (unlike the server, which validates
them once in ``settings``): they are benchmark fixtures, not deployed code.
Nothing here may import the server's packages, and ``aiogram_app`` runs in its
own virtualenv, so this package imports nothing at all.
"""

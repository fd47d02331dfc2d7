"""``flask --app main stacks``: every worker of the running server logs its threads' stacks.

The workers are found through gunicorn's control socket (the path
``gunicorn.conf.py`` gives it: ``GUNICORN_CONTROL_SOCKET``, else
``$TMPDIR/gunicorn-bot-$PORT.ctl``). Each gets SIGUSR2, which a worker
handles in Python (``observability.watchdog.dump_stacks_on``): it logs every
thread's name, the ``update_id`` it is handling and its stack, through the
server's log format. The master is never signalled: SIGUSR2 to the master
re-executes gunicorn (two masters, twice the workers and connections).
"""
from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from gunicorn.ctl.client import ControlClient, ControlClientError

DUMP_SIGNAL = signal.SIGUSR2
SOCKET_TIMEOUT = 5.0


class StacksError(RuntimeError):
    """The server could not be reached or signalled; one line."""


@dataclass(frozen=True)
class Server:
    master_pid: int
    worker_pids: tuple[int, ...]


def find_server(control_socket: str) -> Server:
    """Ask the master, through its control socket, which workers it has."""
    try:
        with ControlClient(control_socket, timeout=SOCKET_TIMEOUT) as client:
            overview = client.send_command("show all")
    except (ControlClientError, OSError) as error:
        raise StacksError(f"no gunicorn answers on {control_socket} ({error}); is the server running "
                          "with this PORT / GUNICORN_CONTROL_SOCKET?") from None
    workers = tuple(worker["pid"] for worker in overview.get("web_workers", []))
    return Server(overview["arbiter"]["pid"], workers)


def request_dumps(server: Server) -> list[int]:
    """SIGUSR2 to each worker, never to the master; returns the pids signalled."""
    signalled = []
    for pid in server.worker_pids:
        if pid == server.master_pid:
            continue
        try:
            os.kill(pid, DUMP_SIGNAL)
        except ProcessLookupError:
            continue  # the worker exited since the master listed it
        except PermissionError:
            raise StacksError(f"not allowed to signal worker {pid}: run as the server's user") from None
        signalled.append(pid)
    return signalled

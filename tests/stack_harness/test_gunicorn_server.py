"""GunicornServer against a tiny Flask app started from its own Procfile."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
import requests

from stack_harness.gunicorn_server import GunicornHarnessError, GunicornServer, expand_variables, read_procfile_command

SAMPLE = Path(__file__).resolve().parents[2] / "stack_harness" / "sample_app"
ENV = {"WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "2"}


def _eventually(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _gone(pids: list[int]) -> bool:
    """True when none of ``pids`` is a live (non-zombie) process."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return not alive


def test_procfile_web_line_is_parsed(tmp_path: Path) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text("release: python migrate.py\nweb: gunicorn -c 'my conf.py' main:app\n")
    assert read_procfile_command(procfile) == ["gunicorn", "-c", "my conf.py", "main:app"]
    with pytest.raises(GunicornHarnessError):
        read_procfile_command(procfile, "worker")


def test_procfile_variables_are_expanded_like_the_shell() -> None:
    argv = ["gunicorn", "--bind", "0.0.0.0:${PORT:-8000}", "--workers", "$WEB_CONCURRENCY", "${MISSING:-x}y"]
    assert expand_variables(argv, {"PORT": "1234", "WEB_CONCURRENCY": "3"}) == [
        "gunicorn", "--bind", "0.0.0.0:1234", "--workers", "3", "xy",
    ]  # fmt: skip
    assert expand_variables(["${PORT:-8000}"], {}) == ["8000"]


def test_server_lifecycle_worker_respawn_and_clean_stop() -> None:
    server = GunicornServer(SAMPLE, ENV)
    try:
        server.start(ready_path="/livez", timeout=30)
        assert requests.get(server.url + "/livez", timeout=5).text == "ok"
        # The arbiter opens its control socket from a thread, maybe after /livez answers.
        assert _eventually(server.control_socket.exists), "gunicorn.conf.py must honour GUNICORN_CONTROL_SOCKET"

        workers = server.wait_for_workers(2, timeout=10)
        served_by = int(requests.get(server.url + "/pid", timeout=5).text)
        assert served_by in workers
        server.wait_for_log(rf"served /pid from worker {served_by}")

        victim = workers[0]
        mark = len(server.log_text())
        server.signal_worker(victim, signal.SIGKILL)
        respawned = server.wait_for_workers(2, exclude={victim}, timeout=15)
        assert victim not in respawned and workers[1] in respawned
        server.wait_for_log(r"Booting worker with pid: \d+", since=mark)
        assert requests.get(server.url + "/livez", timeout=5).status_code == 200

        everything = [server.master_pid, *respawned]
        assert server.stop(timeout=15) == 0
        assert _gone(everything)
        with pytest.raises(requests.ConnectionError):
            requests.get(server.url + "/livez", timeout=2)
    finally:
        server.close()
    assert not server.directory.exists()


def test_start_failure_reports_log_tail_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("web: gunicorn -c gunicorn.conf.py no_such_module:app\n")
    (tmp_path / "gunicorn.conf.py").write_text((SAMPLE / "gunicorn.conf.py").read_text())
    server = GunicornServer(tmp_path, ENV)
    try:
        with pytest.raises(GunicornHarnessError, match="no_such_module"):
            server.start(timeout=20)
        assert not server.running
    finally:
        server.close()

"""The Bot API emulator in a process of its own, for ``python -m bench.compare``.

The naive and aiogram peers call the emulator thousands of times a second.
In the benchmark's own process it would compete for the GIL with the /health
poller and the samplers and distort their timings, and its CPU would be
invisible; in its own process it is measured apart. It is driven through its
HTTP control surface (latency, recorded calls). Users are implicit: any
positive chat id is a user who started the bot, as the benchmark's 20,000
senders are never introduced one by one.

    python -m bench.emulator_process --token T --channel-id C   # prints "URL <url>", serves until SIGTERM
"""
from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import requests

from botapi_emulator import BotApiEmulator

READY_PREFIX = "URL "
START_TIMEOUT = 20.0
CONTROL_TIMEOUT = 30.0
PARENT_CHECK_SECONDS = 1.0


class EmulatorProcessError(RuntimeError):
    """The emulator did not start or did not answer its control surface."""


class EmulatorProcess:
    """``with EmulatorProcess(token, channel_id) as telegram:`` starts it; leaving the block stops it."""

    def __init__(self, token: str, channel_id: int):
        self._command = [sys.executable, "-m", "bench.emulator_process", "--token", token,
                         "--channel-id", str(channel_id)]
        self._stderr = tempfile.TemporaryFile()
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self._seen_calls = 0  # recorded calls already handed out by new_calls()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> EmulatorProcess:
        repo = Path(__file__).resolve().parents[1]
        self._process = subprocess.Popen(self._command, cwd=repo, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=self._stderr, text=True, start_new_session=True)
        ready, _, _ = select.select([self._process.stdout], [], [], START_TIMEOUT)
        line = self._process.stdout.readline() if ready else ""
        if not line.startswith(READY_PREFIX):
            self.stop()
            raise EmulatorProcessError(f"the emulator did not start within {START_TIMEOUT} s: {self._stderr_tail()}")
        self.url = line[len(READY_PREFIX):].strip()
        return self

    def set_latency(self, seconds: float, method: str = "*") -> None:
        self._control("post", "latency", json={"method": method, "seconds": seconds})

    def new_calls(self, method: str | None = None) -> list[dict]:
        """Every call recorded since the previous ``new_calls`` (JSON, as the control surface gives it)."""
        calls = self._control("get", "calls", params={"since": self._seen_calls})
        if calls:
            self._seen_calls = calls[-1]["index"] + 1
        return [call for call in calls if method is None or call["method"] == method]

    def _control(self, verb: str, path: str, **arguments: object):
        response = requests.request(verb, f"{self.url}/control/{path}", timeout=CONTROL_TIMEOUT, **arguments)
        body = response.json()
        if not body.get("ok"):
            raise EmulatorProcessError(f"/control/{path}: {body.get('error')}")
        return body["result"]

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process.stdout.close()
        self._process = None

    def _stderr_tail(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:]

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        self._stderr.close()


def _exit_with_parent(parent: int, stopped: threading.Event) -> None:
    """A benchmark killed outright (SIGKILL) cannot stop us: notice and go."""
    while not stopped.wait(PARENT_CHECK_SECONDS):
        if os.getppid() != parent:
            stopped.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulator_process")
    parser.add_argument("--token", required=True)
    parser.add_argument("--channel-id", type=int, required=True)
    args = parser.parse_args(argv)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    threading.Thread(target=_exit_with_parent, args=(os.getppid(), stopped), daemon=True).start()
    with BotApiEmulator(token=args.token, channel_id=args.channel_id, implicit_users=True) as emulator:
        print(f"{READY_PREFIX}{emulator.url}", flush=True)
        while not stopped.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The aiogram peer's own virtualenv: made on first use, brought up to date when its pins change.

aiogram is no dependency of the project, so it lives in ``bench/.venv-aiogram``
(git-ignored), installed from ``bench/peers/requirements-aiogram.txt`` with
the venv's own pip. A copy of the requirements installed is kept in the
venv; when it differs from the file, pip runs again.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
VENV = BENCH / ".venv-aiogram"
REQUIREMENTS = BENCH / "peers" / "requirements-aiogram.txt"
INSTALLED = VENV / "bench-requirements.txt"
INSTALL_TIMEOUT = 600


class AiogramVenvError(RuntimeError):
    """The venv could not be made or its packages installed."""


def pinned_version(package: str = "aiogram") -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        name, sep, version = line.partition("==")
        if sep and name.strip().lower() == package:
            return version.strip()
    return "?"


def ensure_aiogram_venv() -> Path:
    """The venv's gunicorn, after making the venv or installing what changed."""
    gunicorn = VENV / "bin" / "gunicorn"
    wanted = REQUIREMENTS.read_text()
    if gunicorn.exists() and INSTALLED.exists() and INSTALLED.read_text() == wanted:
        return gunicorn
    print(f"aiogram peer: installing {REQUIREMENTS.relative_to(BENCH.parent)} into {VENV.relative_to(BENCH.parent)} ...",
          flush=True)
    if not (VENV / "bin" / "python").exists():
        _run([sys.executable, "-m", "venv", str(VENV)])
    _run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          "-r", str(REQUIREMENTS)])
    INSTALLED.write_text(wanted)
    return gunicorn


def _run(command: list[str]) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired as error:
        raise AiogramVenvError(f"{command[0]} took more than {INSTALL_TIMEOUT} s") from error
    if result.returncode != 0:
        raise AiogramVenvError(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")

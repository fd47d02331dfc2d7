"""Reading the log file of a process a test started (PostgreSQL, gunicorn)."""
from __future__ import annotations

from pathlib import Path


class LogFile:
    """Mixin: the class sets ``log_path``; the log may not exist yet."""

    log_path: Path

    def log_text(self) -> str:
        """Everything the process wrote so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

"""How a benchmark command runs: SIGTERM and Ctrl-C stop everything it started, known failures are one line.

Exit status: what ``run`` returns, 130 when interrupted, 2 for an error of ``known_errors``.
"""
from __future__ import annotations

import signal
import sys
from typing import Callable, TypeVar

Options = TypeVar("Options")


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into an exception so every ``with`` block cleans up."""


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise Interrupted(f"signal {signum}")


def run_command(run: Callable[[Options], int], options: Options, known_errors: tuple[type[Exception], ...]) -> int:
    signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        return run(options)
    except KeyboardInterrupt:
        print("\ninterrupted: everything started was stopped", file=sys.stderr)
        return 130
    except known_errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

"""Optional sampling profile of one gunicorn worker while the full server is under load.

py-spy is not a project dependency (``pip install py-spy``). It samples from
outside the process, so the server runs unmodified; ``--nonblocking`` keeps it
from pausing the worker at each sample, at the price of an occasional torn
stack. ``--gil`` keeps only samples of the thread holding the GIL: the
question here is where the worker's CPU goes, and without it threads blocked
in database/deadline.py's ``poll()`` (a wait py-spy does not recognise as idle) would
swamp the picture. py-spy takes some CPU of its own on a 2-core machine, so
a profiled run measures a little lower than an unprofiled one.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SAMPLE_RATE = 100  # per second; py-spy's default, cheap enough beside the server
_FRAME_FILE = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)\)$")
_PATH_PREFIX = re.compile(r"^.*/(site-packages|lib/python3\.\d+)/")  # library files, shown from the package on


@dataclass(frozen=True)
class Profile:
    samples: int
    own: list[tuple[str, int]]        # frame -> samples where it was the innermost frame
    inclusive: list[tuple[str, int]]  # project frame -> samples where it was anywhere on the stack


class ProfilerUnavailable(RuntimeError):
    pass


@dataclass
class Recording:
    """py-spy's collapsed stacks (``function (file);...;function (file) count`` lines), once it is done."""

    stacks: str = ""
    error: str | None = None  # a failed profile is reported, it does not fail the benchmark


def require() -> str:
    """py-spy's path; checked before any server starts."""
    binary = shutil.which("py-spy")
    if binary is None:
        raise ProfilerUnavailable("py-spy is not installed: pip install py-spy")
    return binary


@contextmanager
def sampling(pid: int, seconds: float) -> Iterator[Recording]:
    """Record ``pid`` for ``seconds`` while the block runs; the recording is filled when it ends.

    The block waits for the recorder at its end (or kills it on an error) and
    leaves no file behind.
    """
    binary = require()
    recording = Recording()
    with tempfile.TemporaryDirectory(prefix="bench-pyspy-") as directory:
        output = Path(directory) / "stacks.txt"
        command = [binary, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))),
                   "--rate", str(SAMPLE_RATE), "--format", "raw", "--nolineno", "--full-filenames",
                   "--nonblocking", "--gil", "--output", str(output)]
        recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            yield recording
            _, errors = recorder.communicate(timeout=seconds + 30)
            if recorder.returncode == 0 and output.exists():
                recording.stacks = output.read_text()
            else:
                recording.error = f"py-spy exited with {recorder.returncode}: {errors.strip()[-500:]}"
        finally:
            if recorder.poll() is None:
                recorder.kill()
                recorder.wait()


def summarize(recording: Recording, repo: Path, top: int = 15) -> Profile:
    """Own time per frame, and inclusive time per function of the project itself.

    Inclusive time is limited to the project's own files because the top of
    every stack is the same plumbing (threading, gunicorn, Flask), which would
    fill the list without saying anything.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in recording.stacks.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        frames = [_short(frame, repo) for frame in stack.split(";")]
        total += samples
        own[frames[-1][0]] += samples
        for frame in {name for name, in_project in frames if in_project}:
            inclusive[frame] += samples
    return Profile(total, own.most_common(top), inclusive.most_common(top))


def _short(frame: str, repo: Path) -> tuple[str, bool]:
    """``function (file)`` with the file relative to the repo or site-packages, and whether it is the repo's."""
    match = _FRAME_FILE.match(frame)
    if not match:
        return frame, False
    path = match["file"]
    library = bool(_PATH_PREFIX.match(path)) or path.startswith("<")  # e.g. <frozen _collections_abc>
    # gunicorn runs in the repo with it on sys.path, so the project's files show up relative.
    in_project = not library and (not os.path.isabs(path) or path.startswith(str(repo) + "/"))
    path = _PATH_PREFIX.sub("", path.removeprefix(str(repo) + "/"))
    return f"{match['function']} ({path})", in_project


def format_profile(profile: Profile) -> str:
    lines = [f"{profile.samples} samples of the thread holding the GIL ({SAMPLE_RATE} per second)"]
    for title, rows in (("frames by own time (innermost frame)", profile.own),
                        ("project functions by inclusive time", profile.inclusive)):
        lines.append(f"  top {len(rows)} {title}:")
        for frame, samples in rows:
            share = 100 * samples / profile.samples if profile.samples else 0.0
            lines.append(f"    {share:5.1f}%  {samples:6d}  {frame}")
    return "\n".join(lines)

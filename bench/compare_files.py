"""The comparison's files: ``compare.json`` (every figure) and ``compare.png`` (throughput and p99 per target).

matplotlib is only the benchmark's (``bench/requirements.txt``, pinned); when
it is missing it is installed into the running interpreter's environment
with pip first, as the README says.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

from bench.compare_options import CompareOptions
from bench.compare_report import Ratio
from bench.compare_results import TargetResult

REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
PLOT_STYLE = {"bare": ":", "lean": "--", "naive": "-.", "aiogram": (0, (5, 2, 1, 2, 1, 2)), "server": "-"}


def write_json(path: Path, environment: list[str], options: CompareOptions, results: list[TargetResult],
               found: list[Ratio]) -> None:
    chosen = {field.name: getattr(options, field.name) for field in dataclasses.fields(options)}
    chosen["results_dir"] = str(options.results_dir)
    document = {
        "environment": environment,
        "options": chosen,
        "targets": [dataclasses.asdict(result) for result in results],
        "ratios": [dataclasses.asdict(ratio) for ratio in found],
    }
    path.write_text(json.dumps(document, indent=1) + "\n")


def ensure_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print(f"installing {REQUIREMENTS.name} (matplotlib) with pip ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
                       check=True, timeout=600)


def write_plot(path: Path, results: list[TargetResult], title: str) -> None:
    """Updates/s and p99 against connections, one line per target; small (about 40 KB)."""
    ensure_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (rate_axis, p99_axis) = pyplot.subplots(1, 2, figsize=(9, 3.6), dpi=80)
    for result in results:
        if not result.points:
            continue
        connections = [point.connections for point in result.points]
        style = dict(linestyle=PLOT_STYLE.get(result.name, "-"), marker="o", label=result.name,
                     linewidth=2.4 if result.name == "server" else 1.4)
        rate_axis.plot(connections, [point.updates_per_second for point in result.points], **style)
        p99_axis.plot(connections, [point.latency_ms["p99"] for point in result.points], **style)
    ticks = sorted({point.connections for result in results for point in result.points})
    for axis, label in ((rate_axis, "updates/s (2xx answers)"), (p99_axis, "p99 latency, ms (log)")):
        axis.set_xlabel("keep-alive connections (wrk)")
        axis.set_ylabel(label)
        axis.set_xticks(ticks)
        axis.grid(True, alpha=0.3)
    p99_axis.set_yscale("log")
    rate_axis.set_ylim(bottom=0)
    rate_axis.legend(fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    pyplot.close(figure)

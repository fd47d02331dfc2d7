"""The comparison's printed report: environment, table, per-target figures, ratios, checks, verdict.

See bench/README.md, "Reading the comparison", for what each figure means.
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.compare_results import Point, TargetResult

# Issue 11's throughput targets at the highest concurrency: server / peer >= minimum.
RATIO_TARGETS = (("lean", 0.8), ("aiogram", 2.0), ("naive", 5.0))
P99_TARGET = ("lean", 1.3)  # server p99 <= 1.3 x the lean path's


@dataclass(frozen=True)
class Ratio:
    label: str
    by_connections: dict[int, float | None]
    target: str
    met: bool | None  # None: not measured


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 2)


def ratios(results: dict[str, TargetResult], connections: tuple[int, ...]) -> list[Ratio]:
    """server/peer updates/s per concurrency, and server/lean p99, each with issue 11's target at the top one."""
    server, top = results.get("server"), max(connections)
    found = []
    if server is None:
        return found

    def value(result: TargetResult | None, n: int, what) -> float | None:
        point = result.at(n) if result else None
        return what(point) if point else None

    rate = lambda point: point.updates_per_second  # noqa: E731
    p99 = lambda point: point.latency_ms["p99"]  # noqa: E731
    for peer, minimum in RATIO_TARGETS:
        values = {n: _ratio(value(server, n, rate), value(results.get(peer), n, rate)) for n in connections}
        met = None if values[top] is None else values[top] >= minimum
        found.append(Ratio(f"server/{peer} updates/s", values, f">= {minimum}", met))
    peer, maximum = P99_TARGET
    values = {n: _ratio(value(server, n, p99), value(results.get(peer), n, p99)) for n in connections}
    found.append(Ratio(f"server/{peer} p99", values, f"<= {maximum}", None if values[top] is None
                       else values[top] <= maximum))
    return found


def _num(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def results_table(results: list[TargetResult]) -> list[str]:
    header = (f"{'target':<8}{'conns':>6}{'updates/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'max ms':>8}{'non-2xx':>8}"
              f"{'sock err':>9}{'CPU ms/upd':>11}{'SQL/upd':>8}{'B+C/upd':>8}{'split':>8}"
              "   CPU % of a core: wrk/target/pg/emulator/bench/others, idle")
    lines = [header, "-" * len(header)]
    for result in results:
        if result.error:
            lines.append(f"{result.name:<8} did not run: {result.error}")
        for p in result.points:
            cpu = p.cpu_percent
            spent = "/".join(_num(cpu[key], ".0f") for key in ("wrk", "target", "postgres", "emulator", "bench", "rest"))
            lines.append(
                f"{result.name:<8}{p.connections:>6}{p.updates_per_second:>10.1f}{p.latency_ms['p50']:>8.1f}"
                f"{p.latency_ms['p99']:>8.1f}{p.latency_ms['max']:>8.0f}{p.non_2xx:>8}{p.socket_error_count:>9}"
                f"{_num(p.cpu_ms_per_update, '.2f'):>11}{_num(p.sql_per_update, '.2f'):>8}"
                f"{_num(p.transaction_control_per_update, '.2f'):>8}{p.split:>8}   {spent}, {cpu['idle_of_all_cores']:.0f}%")
    return lines


def target_lines(results: list[TargetResult], top: int) -> list[str]:
    lines = []
    for result in results:
        if result.error:
            continue
        point = result.at(top)
        health = point.health if point else None
        health_text = "-" if health is None or not health.probes else (
            f"p50 {_num(health.p50_ms)} / p99 {_num(health.p99_ms)} / max {_num(health.max_ms, '.0f')} ms "
            f"({health.probes} probes, {health.failed} failed)")
        rss = f"{'+'.join(_num(v, '.0f') for v in result.rss_start_mib)} -> " \
              f"{'+'.join(_num(v, '.0f') for v in result.rss_end_mib)} MiB"
        growth = _growth(result.rss_start_mib, result.rss_end_mib)
        settings = ", ".join(f"{name}={value}" for name, value in result.settings.items())
        lines += [f"{result.name}: {result.what}",
                  f"    /health during the {top}-connection run: {health_text}",
                  f"    peak PostgreSQL connections: {_num(result.peak_db_connections, 'd')}; worker RSS "
                  f"{rss} ({growth}); workers replaced during the runs: {result.workers_replaced}",
                  f"    {settings}"]
    return lines


def _growth(start: list[float], end: list[float]) -> str:
    if not start or not end or len(start) != len(end):
        return "workers changed"
    return f"{100 * (sum(end) - sum(start)) / sum(start):+.1f} %"


def ratio_lines(found: list[Ratio], connections: tuple[int, ...], server: TargetResult | None) -> list[str]:
    top = max(connections)
    header = f"{'':<28}" + "".join(f"{n:>8}" for n in connections) + f"   issue 11 target at {top}"
    lines = [header, "-" * len(header)]
    for ratio in found:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[ratio.met]
        lines.append(f"{ratio.label:<28}" + "".join(f"{_num(ratio.by_connections[n], '.2f'):>8}" for n in connections)
                     + f"   {ratio.target}: {verdict}")
    point = server.at(top) if server else None
    if point:
        errors = point.non_2xx + point.socket_error_count
        lines.append(f"server non-2xx + socket errors at {top}: {errors}   0 expected: {'met' if not errors else 'NOT met'}")
        if point.health and point.health.p99_ms is not None:
            ok = point.health.p99_ms < 100 and not point.health.failed
            lines.append(f"server /health p99 at {top}: {point.health.p99_ms:.1f} ms   < 100 ms: "
                         f"{'met' if ok else 'NOT met'}")
    return lines


def statement_lines(point: Point | None) -> list[str]:
    if point is None or not point.top_statements_per_update:
        return []
    return [f"  {calls:6.3f}  {query}" for query, calls in point.top_statements_per_update.items()]


def check_lines(results: list[TargetResult]) -> list[str]:
    lines = []
    for result in results:
        if result.error:
            continue
        verdict = {True: "OK", False: "FAILED", None: "-"}[result.check_ok]
        lines.append(f"{result.name}: {verdict}")
        lines += [f"    {line}" for line in result.check_lines]
    return lines


DISTURBED_PERCENT = 15.0  # others' processes took this much of a core during a run: its figures are low


def note_lines(results: list[TargetResult]) -> list[str]:
    lines = [f"{result.name} at {point.connections}: {note}"
             for result in results for point in result.points for note in point.notes]
    for result in results:
        for point in result.points:
            others = point.cpu_percent.get("rest") or 0.0
            if others >= DISTURBED_PERCENT:
                lines.append(f"{result.name} at {point.connections}: other processes took {others:.0f}% of a core "
                             "during the kept run: its figures are low; run again at a quieter moment")
    return lines


def problems(results: list[TargetResult]) -> list[str]:
    """What makes the run itself wrong (exit status 1); missed issue targets are findings, not failures."""
    found = [f"{r.name}: did not run: {r.error}" for r in results if r.error]
    found += [f"{r.name}: correctness check failed" for r in results if r.check_ok is False]
    return found

"""Results: one ``ScenarioResult`` row per run, the plain-text table, the server log lines to read first."""
from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field


@dataclass
class ScenarioResult:
    """One row of the chaos table, with the evidence behind it."""

    scenario: str
    updates: int = 0
    faults: int = 0
    lost: int = 0
    doubled: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def row(self) -> list[str]:
        return [self.scenario, str(self.updates), str(self.faults), str(self.lost), str(self.doubled),
                "ok" if self.ok else f"FAIL({len(self.violations)})", "; ".join(self.notes)]

    def assert_invariants(self) -> None:
        if self.violations:
            lines = [f"{self.scenario}: {len(self.violations)} invariant(s) broken"]
            lines += [f"  - {violation}" for violation in self.violations]
            if self.evidence:
                lines += ["  server log:"] + [f"    {line}" for line in self.evidence]
            raise AssertionError("\n".join(lines))

    @classmethod
    def crashed(cls, scenario: str, error: BaseException, seconds: float) -> ScenarioResult:
        """A run that could not finish (the harness failed): one violation with the traceback's tail."""
        tail = "".join(traceback.format_exception(error)).strip().splitlines()[-6:]
        return cls(scenario, seconds=seconds, violations=[f"run aborted: {type(error).__name__}: {error}"],
                   evidence=tail)


TABLE_HEADER = ["scenario", "updates", "faults injected", "lost", "doubled", "result", "notes"]


def format_table(rows: list[list[str]], header: list[str] = TABLE_HEADER) -> str:
    """A plain-text table; the last column (notes) is left unpadded."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: list[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]

    rule = "  ".join("-" * width for width in widths) + "  " + "-" * len(header[-1])
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def notable_log_lines(log: str, limit: int = 20) -> list[str]:
    """Distinct error lines from the server log, the evidence to read first."""
    seen: dict[str, str] = {}
    for line in log.splitlines():
        if re.search(r"\b(ERROR|CRITICAL)\b|Traceback|Error:", line):
            key = re.sub(r"\d+", "N", line)[:160]  # the same error for another pid or update is not news
            seen.setdefault(key, line[:300])
            if len(seen) >= limit:
                break
    return list(seen.values())

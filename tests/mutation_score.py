"""The mutation score per module from mutmut's results (``mutants/**/*.py.meta``), as ``make mutation`` prints it.

A mutant counts as caught when a test failed on it (or it timed out: a loop that no longer ends); as not caught
when every test passed on it (survived) or no fast test runs its function at all (no tests). The score is caught
over caught + not caught: a mutant never run (``mutmut run`` stopped, or a subset was asked) counts in neither.

Usage: ``python -m tests.mutation_score [mutants]``

Example:
    >>> rows = scores({"functions/pipeline/a.py": {"m1": 1, "m2": 0, "m3": 33, "m4": None, "m5": 36}})
    >>> rows[0]
    Score(module='functions/pipeline/a.py', caught=2, survived=1, no_tests=1, not_run=1)
    >>> f"{rows[0].percent:.0f}"
    '50'
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CAUGHT = {1, 3, 36, 37, 24, -24, 152, 255}  # killed, pytest internal error, timeouts, type check (mutmut/stats.py)
SURVIVED = {0}
NO_TESTS = {5, 33}


@dataclass(frozen=True)
class Score:
    module: str
    caught: int
    survived: int
    no_tests: int
    not_run: int

    @property
    def percent(self) -> float:
        checked = self.caught + self.survived + self.no_tests
        return 100.0 * self.caught / checked if checked else 0.0


def scores(exit_codes: Mapping[str, Mapping[str, int | None]]) -> list[Score]:
    """One :class:`Score` per module, from each mutant's pytest exit code (None: not run)."""
    rows = []
    for module, codes in sorted(exit_codes.items()):
        values = list(codes.values())
        rows.append(
            Score(
                module,
                caught=sum(1 for c in values if c in CAUGHT),
                survived=sum(1 for c in values if c in SURVIVED),
                no_tests=sum(1 for c in values if c in NO_TESTS),
                not_run=sum(1 for c in values if c is None),
            )
        )
    return rows


def read(mutants: Path) -> dict[str, dict[str, int | None]]:
    """The exit codes mutmut stored per source file."""
    found = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        found[str(meta.relative_to(mutants))[: -len(".meta")]] = data.get("exit_code_by_key", {})
    return found


def main(argv: list[str]) -> int:
    # A module every mutant of which reaches no fast test is 0 %, not left out; one with nothing run is left out.
    rows = [
        row for row in scores(read(Path(argv[0] if argv else "mutants"))) if row.caught + row.survived + row.no_tests
    ]
    print(f"{'module':45} {'caught':>7} {'survived':>9} {'no tests':>9} {'not run':>8} {'score':>7}")
    for row in rows:
        print(f"{row.module:45} {row.caught:7} {row.survived:9} {row.no_tests:9} {row.not_run:8} {row.percent:6.1f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

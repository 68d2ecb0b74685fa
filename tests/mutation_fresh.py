"""Run mutants of code that runs when a module is imported, each in a fresh import (docs/reliability.md, "Mutation
testing"). ``mutmut run`` and ``tests/mutation_recheck.py`` fork after the tests are collected, so a mutant of a
function called at import time (``contract.py``'s plain Segment validator, the pydantic core schemas of its
annotated types) is never active there: each of its mutants "survives" or reaches "no test".

Here the parent imports pytest and the third-party libraries only; for each mutant a forked child sets
``MUTANT_UNDER_TEST`` and runs pytest on the given files, which imports the repo's modules under the mutant, and
stops at the first failure (``-x``). The children run one at a time, in the order given.

Usage, in ``mutants/`` after ``mutmut run`` has generated the mutants::

    M_NAMES=names.txt M_OUT=results.txt [M_MAX_EXAMPLES=100] [M_TIMEOUT=600] PYTHONPATH=.. \\
        python -m tests.mutation_fresh tests/unit/pipeline/test_contract.py ...

``results.txt`` gets one ``<mutant> <exit code>`` line per mutant, as ``tests/mutation_recheck.py`` writes them (0
survived, 1 killed, 2 the import itself failed: killed, 5 no test collected, a negative code a signal).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

# What the repo's modules import, loaded once in the parent (each child imports only the repo's own code again).
_PRELOADED = ("pytest", "pydantic", "pydantic_core", "hypothesis", "orjson", "requests", "aws_lambda_powertools")


def _run_one(mutant: str, files: list[str], timeout_s: int) -> int:
    pid = os.fork()
    if pid == 0:
        import pytest

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        signal.alarm(timeout_s)
        os.environ["MUTANT_UNDER_TEST"] = mutant
        for variable in ("M_NAMES", "M_OUT"):  # else tests.mutation_recheck would take this run over
            os.environ.pop(variable, None)
        args = ["-q", "-x", "-p", "no:randomly", "-p", "no:cacheprovider", "-p", "tests.mutation_recheck", *files]
        try:
            code = int(pytest.main(args))
        except BaseException:  # a mutant that breaks pytest itself is caught
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main(files: list[str]) -> int:
    for name in _PRELOADED:
        __import__(name)
    assert not any(m == "functions" or m.startswith("functions.") for m in sys.modules), "repo imported too early"
    names = [line.strip() for line in Path(os.environ["M_NAMES"]).read_text().splitlines() if line.strip()]
    timeout_s = int(os.environ.get("M_TIMEOUT", "600"))
    with open(os.environ["M_OUT"], "a", buffering=1) as out:
        out.write(f"# baseline (no mutant): {_run_one('', files, timeout_s)}\n")
        for mutant in names:
            out.write(f"{mutant} {_run_one(mutant, files, timeout_s)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Run mutmut's mutants under its trampoline inside one pytest session: a faster ``mutmut run`` for a list of mutants
(docs/reliability.md, "Mutation testing": a loaded machine made mutmut's own run of the mapping modules too slow).

The tests are collected once; then, per mutant, a forked child runs the tests mutmut's stats map to the mutated
function (``mutants/mutmut-stats.json``) plus any test whose node id contains a line of ``M_EXTRA`` (tests written
after the stats), fastest first, and stops at the first failure, as mutmut does. First, unless
``M_SKIP_BASELINE`` is set, every test used runs once unmutated; one that fails then is left out (and counted in
the output's first line). Code that runs when a module is imported is not mutated this way (nor by mutmut: both
fork after the import): re-check it with ``MUTANT_UNDER_TEST=<name> pytest <files>`` in a fresh process.

Usage, in ``mutants/`` after ``mutmut run`` has generated the mutants and its stats::

    M_NAMES=names.txt M_OUT=results.txt [M_EXTRA=extra.txt] [M_MAX_EXAMPLES=100] [M_TIMEOUT=240] \\
        PYTHONPATH=.. python -m pytest -q -p no:randomly -p tests.mutation_recheck tests/unit functions/pipeline

``results.txt`` gets one ``<mutant> <exit code>`` line per mutant: 0 survived, 1 killed, 33 no test reaches it,
a negative code a signal (the ``M_TIMEOUT`` alarm: a mutant that never ends). ``M_MAX_EXAMPLES`` caps every
hypothesis test's examples (faster, and a lower bound of what the full suite kills).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from _pytest.runner import runtestprotocol

if os.environ.get("M_MAX_EXAMPLES"):
    import hypothesis

    _CAP = int(os.environ["M_MAX_EXAMPLES"])
    _settings_init = hypothesis.settings.__init__

    def _capped_init(self: hypothesis.settings, parent: hypothesis.settings | None = None, **kwargs: Any) -> None:
        if isinstance(kwargs.get("max_examples"), int):
            kwargs["max_examples"] = min(_CAP, kwargs["max_examples"])
        _settings_init(self, parent, **kwargs)

    hypothesis.settings.__init__ = _capped_init  # type: ignore[method-assign]
    hypothesis.settings.register_profile("mutation-recheck", max_examples=_CAP)
    hypothesis.settings.load_profile("mutation-recheck")


def _function_of(mutant: str) -> str:
    """``functions.pipeline.kochava.x_flatten__mutmut_12`` -> ``functions.pipeline.kochava.x_flatten``."""
    return mutant.rsplit("__mutmut_", 1)[0]


def _lines(path: str | None) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()] if path else []


def _failed(items: Sequence[pytest.Item]) -> list[str]:
    """Run ``items`` in order (fixtures kept between them); the node ids of those that failed."""
    failed = []
    for index, item in enumerate(items):
        following = items[index + 1] if index + 1 < len(items) else None
        if any(report.failed for report in runtestprotocol(item, nextitem=following, log=False)):
            failed.append(item.nodeid)
    return failed


def _in_child(mutant: str, items: Sequence[pytest.Item], timeout_s: int) -> int:
    """Fork; in the child, run ``items`` with ``mutant`` active until one fails. The child's exit code."""
    pid = os.fork()
    if pid == 0:
        from mutmut.mutation.trampoline import set_mutant_under_test

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        signal.alarm(timeout_s)
        set_mutant_under_test(mutant)
        code = 0
        try:
            for index, item in enumerate(items):
                following = items[index + 1] if index + 1 < len(items) else None
                if any(report.failed for report in runtestprotocol(item, nextitem=following, log=False)):
                    code = 1
                    break
        except BaseException:  # a mutant that breaks the runner is caught, as mutmut counts it
            code = 3
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _baseline(items: Sequence[pytest.Item]) -> set[str]:
    """The tests that fail unmutated (run in a child, so no fixture state leaks into the mutants' runs)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with os.fdopen(write, "w") as out:
            out.write("\n".join(_failed(items)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as answer:
        failing = {line for line in answer.read().splitlines() if line}
    os.waitpid(pid, 0)
    return failing


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    if "M_NAMES" not in os.environ:
        return None  # not asked: pytest's own loop runs the tests (a False here would stop it: a firstresult hook)
    stats = json.loads(Path("mutmut-stats.json").read_text())
    tests_by_function: dict[str, list[str]] = stats["tests_by_mangled_function_name"]
    duration: dict[str, float] = stats["duration_by_test"]
    by_id = {item.nodeid: item for item in session.items}
    extra_keys = _lines(os.environ.get("M_EXTRA"))
    extra = {nodeid for nodeid in by_id if any(key in nodeid for key in extra_keys)}
    chosen = {
        mutant: sorted(
            {t for t in tests_by_function.get(_function_of(mutant), []) if t in by_id} | extra,
            key=lambda t: duration.get(t, 0.0),
        )
        for mutant in _lines(os.environ["M_NAMES"])
    }
    used = sorted({t for tests in chosen.values() for t in tests}, key=lambda t: duration.get(t, 0.0))
    failing = set() if os.environ.get("M_SKIP_BASELINE") else _baseline([by_id[t] for t in used])
    timeout_s = int(os.environ.get("M_TIMEOUT", "240"))
    with open(os.environ["M_OUT"], "a", buffering=1) as out:
        out.write(f"# baseline: {len(used)} tests, {len(failing)} failing unmutated (left out): {sorted(failing)}\n")
        for mutant, tests in chosen.items():
            items = [by_id[t] for t in tests if t not in failing]
            code = _in_child(mutant, items, timeout_s) if items else 33
            out.write(f"{mutant} {code}\n")
    return True

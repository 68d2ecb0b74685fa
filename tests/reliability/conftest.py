"""One fault-injection run (``fault_run.run_faults``, about a minute) shared by the tests of a module."""

from __future__ import annotations

import pytest

from tests.reliability.fault_run import FaultRun, run_faults, summary


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory) -> FaultRun:
    run = run_faults(tmp_path_factory.mktemp("fault-run") / "lambdas.log")
    print(summary(run))  # shown with the output of a failing test
    return run

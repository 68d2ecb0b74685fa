"""``make bench`` keeps working: every benchmark runs and prints its figures next to their targets.

A smoke run (``--quick``: small inputs, few repetitions, not pinned; smaller still with ``--events 4000 --runs 1``,
which an explicit size may do: any size shows that a figure is measured, and it costs 6 s less CPU). Nothing here
asserts a speed: the figures depend on the machine (docs/benchmarks.md); what is checked is that each figure is
measured, printed with its target and a verdict, and that no benchmark failed.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.infra.support import REPO_ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

# figure -> its target as the table prints it ("" for figures without one)
EXPECTED_ROWS = {
    "throughput, one core, CPU time (whole process)": ">= 40,000",
    "ratio to json.loads + json.dumps (CPU time)": "<= 2x",
    "ratio to orjson.loads + orjson.dumps, whole processes (CPU time)": "<= 3x",
    "Segment track/screen/identify: bytes -> payload bytes / orjson loads+dumps (CPU time, same rounds)": "<= 2.6x",
    "native mix: bytes -> payload bytes / orjson loads+dumps (CPU time, same rounds)": "<= 3x",
    "import functions.enricher.handler (Lambda env)": "<= 150 ms",
    "import functions.deliverer.handler (Lambda env)": "<= 150 ms",
    "import functions.authorizer.handler (Lambda env)": "<= 150 ms",
    "import + first-invocation wiring, enricher": "-",
    "10-record batch wall / one request's latency (warm container)": "<= 2",
    "TCP connections opened for 100 payloads (10 batches from cold)": "<= 10 (1 per worker)",
    "$ per million events at 1 event(s) per request (list prices, assumptions)": "-",
}
_ROW = re.compile(
    r"^\| (?P<bench>[^|]+) \| (?P<what>[^|]+) \| (?P<value>[^|]+) \| (?P<target>[^|]+) \| (?P<verdict>\w+) \|$"
)


@pytest.fixture(scope="module")
def quick_run() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--events",
            "4000",
            "--runs",
            "1",
            "--no-pin",
            "--markdown",
            "transform",
            "hotpath",
            "coldstart",
            "slow-kochava",
            "cost",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )


def test_every_benchmark_runs_and_none_fails(quick_run: subprocess.CompletedProcess[str]) -> None:
    assert quick_run.returncode == 0, quick_run.stdout[-3000:] + quick_run.stderr[-3000:]
    assert "FAILED" not in quick_run.stdout and "benchmark failed" not in quick_run.stdout, quick_run.stdout[-3000:]
    assert "machine: " in quick_run.stdout and "load average before the run" in quick_run.stdout


def test_each_figure_is_printed_with_its_target_and_a_verdict(quick_run: subprocess.CompletedProcess[str]) -> None:
    rows = {m["what"].strip(): m for line in quick_run.stdout.splitlines() if (m := _ROW.match(line))}
    for figure, target in EXPECTED_ROWS.items():
        assert figure in rows, f"{figure!r} missing from the table:\n{quick_run.stdout[-3000:]}"
        row = rows[figure]
        assert row["target"].strip() == target
        assert row["verdict"] in (("met", "MISSED") if target != "-" else ("info",))
        assert row["value"].strip() not in ("n/a", ""), f"{figure}: no value"

"""Benchmark 2: cold start, i.e. the import time of each Lambda handler module in a fresh interpreter.

For each handler, ``python -c "import <handler>"`` and a bare ``python -c "pass"`` run alternately as child
processes pinned to one core; the figure is the median difference (the handler's import cost without the
interpreter's own start). The environment looks like the deployed Lambda's (``LAMBDA_TASK_ROOT`` set, so
Powertools' Tracer is enabled and imports and patches the X-Ray SDK as with ``Tracing.ACTIVE``); a second figure
with tracing off (as in tests and the local stack) is printed for information. ``python -X importtime`` then names
the imports that cost most, so an owner knows what to make lazy.

Target (issue 8): at most 300 ms per handler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.common import PYTHON, Result, base_env, median, run_child, spread

NAME = "cold start"
HANDLERS = ("functions.enricher.handler", "functions.deliverer.handler")
TARGET_MS = 300.0
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")


def lambda_env(handler: str, tracing: bool = True) -> dict[str, str]:
    """What the Lambda runtime sets that changes what gets imported (region, function name, task root)."""
    name = "kochava-bench-" + handler.split(".")[1]
    env = base_env(
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_LAMBDA_FUNCTION_NAME=name,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
        POWERTOOLS_SERVICE_NAME=name,
    )
    if tracing:
        env["LAMBDA_TASK_ROOT"] = "/var/task"
    else:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    return env


@dataclass(frozen=True)
class ImportCost:
    module: str
    self_ms: float
    cumulative_ms: float
    depth: int


def import_costs(handler: str, tracing: bool = True) -> list[ImportCost]:
    """Every import of ``import handler`` with its cumulative ms and nesting depth (``python -X importtime``)."""
    import subprocess

    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", f"import {handler}"],
        env=lambda_env(handler, tracing),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"import {handler} failed: {done.stderr.strip().splitlines()[-1:]}")
    costs = []
    for line in done.stderr.splitlines():
        match = _LINE.match(line)
        if match:
            costs.append(ImportCost(match[4], int(match[1]) / 1000, int(match[2]) / 1000, len(match[3]) // 2))
    return costs


def heaviest(costs: list[ImportCost], handler: str, count: int = 8) -> list[tuple[str, float]]:
    """Where the import time goes: this repo's modules imported by the handler (cumulative ms) and third-party
    top-level packages (the sum of their modules' own ms), costliest first."""
    handler_depth = next((c.depth for c in costs if c.module == handler), 0)
    first_party = [
        (c.module, c.cumulative_ms)
        for c in costs
        if c.module.split(".")[0] in {"functions", "infra", "tools"} and c.depth == handler_depth + 1
    ]
    by_package: dict[str, float] = {}
    for cost in costs:
        top = cost.module.split(".")[0]
        if top not in {"functions", "infra", "tools"}:
            by_package[top] = by_package.get(top, 0.0) + cost.self_ms
    third_party = sorted(by_package.items(), key=lambda item: -item[1])[:count]
    return sorted(first_party, key=lambda item: -item[1])[:count] + third_party


def measure(handler: str, runs: int, cpu: int | None, tracing: bool) -> tuple[list[float], list[float]]:
    """(wall ms, CPU ms) differences, one per run: import minus bare interpreter."""
    env = lambda_env(handler, tracing)
    walls, cpus = [], []
    run_child([PYTHON, "-c", f"import {handler}"], env=env, cpu=cpu)  # warm the page cache and .pyc files
    for _ in range(runs):
        bare = run_child([PYTHON, "-c", "pass"], env=env, cpu=cpu)
        full = run_child([PYTHON, "-c", f"import {handler}"], env=env, cpu=cpu)
        if full.returncode != 0:
            raise RuntimeError(f"import {handler} failed (exit {full.returncode})")
        walls.append((full.wall_s - bare.wall_s) * 1000)
        cpus.append((full.cpu_s - bare.cpu_s) * 1000)
    return walls, cpus


def run(runs: int = 9, cpu: int | None = None, echo: bool = True) -> list[Result]:
    results = []
    for handler in HANDLERS:
        try:
            walls, cpus = measure(handler, runs, cpu, tracing=True)
            local_walls, _ = measure(handler, max(3, runs // 2), cpu, tracing=False)
            costs = heaviest(import_costs(handler), handler)
        except (RuntimeError, OSError) as exc:
            results.append(
                Result(NAME, f"import {handler}", float("nan"), f"<= {TARGET_MS:.0f} ms", False, "ms", str(exc))
            )
            continue
        wall = median(walls)
        top = ", ".join(f"{module} {ms:.0f}" for module, ms in costs)
        results.append(
            Result(
                NAME,
                f"import {handler} (Lambda env)",
                wall,
                f"<= {TARGET_MS:.0f} ms",
                wall <= TARGET_MS,
                "ms",
                f"median of {runs}, runs {spread(walls)} ms; CPU {median(cpus):.0f} ms; -X importtime (one run): "
                f"repo modules (cumulative ms) then packages (own ms): {top}",
            )
        )
        results.append(Result(NAME, f"import {handler} (tracing off, as in tests)", median(local_walls), unit="ms"))
        if echo:
            print(f"  {handler}: {wall:.0f} ms (tracing off {median(local_walls):.0f} ms)", flush=True)
    return results

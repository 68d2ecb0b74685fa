"""Benchmark 2: cold start, i.e. the import time of each Lambda handler module in a fresh interpreter.

Each run starts two child processes pinned to one core, in the Lambda's environment (below), for each handler
in turn (so a slow spell of the shared machine falls on both alike):

* a probe: a fresh interpreter that times ``import <handler>`` itself (``time.perf_counter`` and
  ``time.process_time`` around the import statement: the interpreter's own start is not in it, nothing else
  is), then times the wiring the first invocation does (``get_runtime()``, exactly what the handler calls:
  settings, the AWS clients, the HTTP session, with the collector paused as in Lambda; no network), prints the
  figures and leaves with ``os._exit``;
* a bare interpreter (``import os; os._exit(0)``), as the cross-check the issue describes: the probe's process
  wall time minus the bare one's is the import time measured from outside.

Both leave with ``os._exit``: an interpreter's tear-down (freeing every imported module, 70-90 ms for the enricher
here) is not part of a Lambda cold start, which never ends the interpreter it has just started. The figure is the
median over the runs of the probe's own import time (wall clock). ``python -X importtime`` then names the imports
that cost most, so an owner knows what to make lazy.

The environment is the deployed function's as far as imports are concerned: ``LAMBDA_TASK_ROOT`` set (so
Powertools' Tracer is enabled and imports and patches the X-Ray SDK, as with ``Tracing.ACTIVE``), the region,
the Powertools service name, and ``FUNCTION_STATIC_ENV`` (``infra/resources.py``), which the stack sets too.

The API key authorizer (standard library only) is measured too: its figure is a few percent of the enricher's.

Target (issue 27; 300 ms in issue 8): at most 150 ms per handler. The whole init (import + wiring) is printed next
to it, so moving work from the import into the first invocation cannot make a cold start look shorter.

On a loaded machine wall clock says little; ``python -m bench.coldstart --instructions`` counts the instructions
of the import and of the wiring instead (callgrind, the same probe; valgrind must be installed), which do not
depend on the load; ``--pieces`` splits the import into its big pieces (:data:`PIECES`), each counted on top of the
ones before it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass

from bench.common import PYTHON, Result, base_env, median, precompile_repo, run_child, spread
from functions.names import (
    ENV_DELIVERY_DLQ_URL,
    ENV_DELIVERY_QUEUE_URL,
    ENV_DELIVERY_STATE_TABLE,
    ENV_IDEMPOTENCY_TABLE,
    ENV_INGEST_DLQ_URL,
    ENV_INGEST_QUEUE_URL,
    ENV_PROFILE_TABLE,
    FUNCTION_STATIC_ENV,
)

NAME = "cold start"
TARGET_MS = 150.0
# Handler module -> the call its first invocation makes to wire the container (see each handler's docstring).
HANDLERS = {
    "functions.enricher.handler": "handler.get_runtime()",
    "functions.deliverer.handler": "handler.get_runtime()",
    # The ingest API's key authorizer (standard library only; API Gateway caches its answers per key).
    "functions.authorizer.handler": "handler.lambda_handler({'resource': '/v1/batch', 'headers': {}}, None)",
}
# The big pieces of each handler's import, in the order the handler imports them (``--pieces``, docs/benchmarks.md):
# Powertools first, then what its Tracer and the X-Ray patches import, then the repo's own modules. Each must be a
# module the handler's import loads (tests/unit/test_coldstart.py).
PIECES = {
    "functions.deliverer.handler": (
        "aws_lambda_powertools",
        "importlib.metadata",  # urllib3's HTTP/2 probe module imports it
        "urllib3",
        "requests",
        "aws_xray_sdk.core",
        "botocore.utils",
        "botocore.docs",
        "botocore.client",  # X-Ray's botocore patch imports it
        "aws_xray_sdk.ext.botocore.patch",
        "aws_xray_sdk.ext.requests.patch",
    ),
    "functions.enricher.handler": (
        "aws_lambda_powertools",
        "pydantic",
        "pydantic._internal._model_construction",  # and importlib.metadata, which pydantic's plugin loader imports
        "urllib3",
        "aws_xray_sdk.core",
        "botocore.client",
        "aws_xray_sdk.ext.botocore.patch",
        "functions.pipeline.contract",
        "functions.pipeline.events",
        "functions.enricher.core",
    ),
}
_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/kochava-bench-"
# What the stack passes to each function besides FUNCTION_STATIC_ENV, for the wiring step (no call is made).
_WIRING_ENV = {
    ENV_INGEST_QUEUE_URL: _QUEUE + "ingest",
    ENV_INGEST_DLQ_URL: _QUEUE + "ingest-dlq",
    ENV_DELIVERY_QUEUE_URL: _QUEUE + "delivery",
    ENV_DELIVERY_DLQ_URL: _QUEUE + "delivery-dlq",
    ENV_PROFILE_TABLE: "kochava-bench-profiles",
    ENV_IDEMPOTENCY_TABLE: "kochava-bench-idempotency",
    ENV_DELIVERY_STATE_TABLE: "kochava-bench-delivery-state",  # the stack sets it: the deliverer wires its breaker
    "AWS_ACCESS_KEY_ID": "bench",  # as the Lambda runtime provides; never used (no request is sent)
    "AWS_SECRET_ACCESS_KEY": "bench",
}
_PROBE = """\
import os, sys, time
wall, cpu = time.perf_counter(), time.process_time()
import {module} as handler
imported_wall, imported_cpu = time.perf_counter(), time.process_time()
{wiring}
wired_wall = time.perf_counter()
sys.stdout.write(f"{{imported_wall - wall}} {{imported_cpu - cpu}} {{wired_wall - wall}}\\n")
sys.stdout.flush()
os._exit(0)
"""
_BARE = "import os; os._exit(0)"
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)$")


def lambda_env(module: str) -> dict[str, str]:
    """What the Lambda runtime and the stack set that changes what gets imported (region, task root, names)."""
    name = "kochava-bench-" + module.split(".")[1]
    return base_env(
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_LAMBDA_FUNCTION_NAME=name,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="512",
        LAMBDA_TASK_ROOT="/var/task",
        POWERTOOLS_SERVICE_NAME=name,
        **FUNCTION_STATIC_ENV,
        **_WIRING_ENV,
    )


@dataclass(frozen=True)
class ImportCost:
    module: str
    self_ms: float
    cumulative_ms: float
    depth: int


@dataclass(frozen=True)
class ColdStartRun:
    """One probe, in ms: the import (wall, CPU), import + first-invocation wiring, and the outside view."""

    import_ms: float
    import_cpu_ms: float
    init_ms: float
    outside_ms: float  # probe process wall minus a bare interpreter's (includes the wiring and the print)


def import_costs(module: str) -> list[ImportCost]:
    """Every import of ``import module`` with its cumulative ms and nesting depth (``python -X importtime``)."""
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", f"import {module}"],
        env=lambda_env(module),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"import {module} failed: {done.stderr.strip().splitlines()[-1:]}")
    costs = []
    for line in done.stderr.splitlines():
        match = _LINE.match(line)
        if match:
            costs.append(ImportCost(match[4], int(match[1]) / 1000, int(match[2]) / 1000, len(match[3]) // 2))
    return costs


def heaviest(costs: list[ImportCost], module: str, count: int = 8) -> list[tuple[str, float]]:
    """Where the import time goes: this repo's modules imported by the handler (cumulative ms) and third-party
    top-level packages (the sum of their modules' own ms), costliest first."""
    handler_depth = next((c.depth for c in costs if c.module == module), 0)
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


def _probe_args(module: str) -> list[str]:
    return [PYTHON, "-c", _PROBE.format(module=module, wiring=HANDLERS[module])]


def _probe_once(module: str, cpu: int | None) -> ColdStartRun:
    env = lambda_env(module)
    bare = run_child([PYTHON, "-c", _BARE], env=env, cpu=cpu)
    full = run_child(_probe_args(module), env=env, cpu=cpu, capture=True)
    if full.returncode != 0 or len(full.stdout.split()) != 3:
        raise RuntimeError(f"probe of {module} failed (exit {full.returncode}); run it by hand: {_probe_args(module)}")
    import_s, import_cpu_s, init_s = (float(x) for x in full.stdout.split())
    return ColdStartRun(import_s * 1000, import_cpu_s * 1000, init_s * 1000, (full.wall_s - bare.wall_s) * 1000)


def measure(modules: list[str], runs: int, cpu: int | None) -> dict[str, list[ColdStartRun] | RuntimeError]:
    """``runs`` probes of each module, each next to a bare interpreter, the modules taking turns.

    Taking turns (enricher, deliverer, enricher...) rather than 9 of one then 9 of the other: on a shared VM a
    slow spell of a few seconds then lands on both handlers alike instead of on whichever was measuring.
    """
    results: dict[str, list[ColdStartRun] | RuntimeError] = {}
    for module in modules:  # a first run each: page cache, and a check that the probe works at all
        try:
            _probe_once(module, cpu)
            results[module] = []
        except (RuntimeError, OSError) as exc:
            results[module] = RuntimeError(str(exc))
    for _ in range(runs):
        for module in modules:
            probes = results[module]
            if isinstance(probes, list):
                probes.append(_probe_once(module, cpu))
    return results


def run(runs: int = 9, cpu: int | None = None, echo: bool = True) -> list[Result]:
    results = []
    measured = measure(list(HANDLERS), runs, cpu)
    for module, probes in measured.items():
        try:
            if isinstance(probes, RuntimeError):
                raise probes
            costs = heaviest(import_costs(module), module)
        except (RuntimeError, OSError) as exc:
            results.append(
                Result(NAME, f"import {module}", float("nan"), f"<= {TARGET_MS:.0f} ms", False, "ms", str(exc))
            )
            continue
        imports = [p.import_ms for p in probes]
        wall = median(imports)
        init = median([p.init_ms for p in probes])
        top = ", ".join(f"{name} {ms:.0f}" for name, ms in costs)
        results.append(
            Result(
                NAME,
                f"import {module} (Lambda env)",
                wall,
                f"<= {TARGET_MS:.0f} ms",
                wall <= TARGET_MS,
                "ms",
                f"median of {runs} (handlers taking turns), runs {spread(imports)} ms; "
                f"CPU {median([p.import_cpu_ms for p in probes]):.0f} ms; "
                "seen from outside (process minus bare interpreter, incl. wiring) "
                f"{median([p.outside_ms for p in probes]):.0f} ms; -X importtime (one run): repo modules "
                f"(cumulative ms) then packages (own ms): {top}",
            )
        )
        results.append(
            Result(
                NAME,
                f"import + first-invocation wiring, {module.split('.')[1]}",
                init,
                unit="ms",
                detail=f"{HANDLERS[module]} after the import (settings, AWS clients, HTTP pool; no request): the whole "
                f"init; the wiring alone {median([p.init_ms - p.import_ms for p in probes]):.0f} ms",
            )
        )
        if echo:
            wiring = median([p.init_ms - p.import_ms for p in probes])
            print(f"  {module}: import {wall:.0f} ms + first-invocation wiring {wiring:.0f} ms = init {init:.0f} ms")
    return results


def _collected(module: str, code: str) -> int:
    """Instructions callgrind counts for ``python -c code`` in ``module``'s Lambda environment."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", PYTHON, "-c", code],
        env=lambda_env(module),
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or not match:
        raise RuntimeError(f"callgrind of {module} failed: {done.stderr.strip().splitlines()[-1:]}")
    return int(match[1])


def instructions(module: str) -> tuple[int, int]:
    """Instructions (callgrind) of the handler's import and of its first invocation's wiring, in the Lambda env:
    the same probe three ways (bare interpreter, import only, import + wiring), each difference the figure."""
    bare = _collected(module, _BARE)
    imported = _collected(module, f"import os\nimport {module} as handler\nos._exit(0)")
    wired = _collected(module, f"import os\nimport {module} as handler\n{HANDLERS[module]}\nos._exit(0)")
    return imported - bare, wired - imported


def pieces(module: str) -> list[tuple[str, int]]:
    """Where the handler's import goes (``--pieces``): each of :data:`PIECES` imported after the ones before it, then
    the handler, each counted on top of the ones before (the standard library a piece imports first counts with it;
    the sum runs a few percent above :func:`instructions`' import, each piece being its own statement)."""
    names = [*PIECES.get(module, ()), module]
    counts = [_collected(module, _BARE)]
    for done in range(1, len(names) + 1):
        counts.append(
            _collected(module, "import os\n" + "".join(f"import {n}\n" for n in names[:done]) + "os._exit(0)")
        )
    return [(name, counts[i + 1] - counts[i]) for i, name in enumerate(names)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instructions", action="store_true", help="count instructions (callgrind), not time")
    parser.add_argument(
        "--pieces", action="store_true", help="count the import piece by piece (PIECES; callgrind), not in total"
    )
    parser.add_argument("--runs", type=int, default=9, help="timed runs per handler (median; default 9)")
    parser.add_argument("modules", nargs="*", default=list(HANDLERS)[:2], help="handler modules (Lambda ones)")
    args = parser.parse_args(argv)
    if not (args.instructions or args.pieces):
        run(runs=args.runs)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    precompile_repo()  # as the deployed assets carry bytecode (bench/common.py)
    for module in args.modules:
        if args.pieces:
            for name, count in pieces(module):
                print(f"{module}: + {name} {count / 1e6:,.1f} M instructions", flush=True)
            continue
        imported, wiring = instructions(module)
        print(
            f"{module}: import {imported / 1e6:,.0f} M instructions + first-invocation wiring {wiring / 1e6:,.0f} M"
            f" = whole init {(imported + wiring) / 1e6:,.0f} M",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

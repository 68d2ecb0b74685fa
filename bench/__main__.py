"""``python -m bench`` (``make bench``): run the benchmarks of issue 8, print figures and targets side by side.

    python -m bench                      # everything (a few minutes on 2 cores)
    python -m bench transform coldstart  # only these (names: transform, hotpath, coldstart, slow-kochava, e2e,
                                         # outage, cost)
    python -m bench --quick              # smaller inputs, fewer repetitions: a smoke run
    python -m bench --markdown           # also print the results as a Markdown table (docs/benchmarks.md)

Child processes are pinned to one core (the last one this process may use; ``--no-pin`` to let them float).
Exit status 0 whatever the figures (they depend on the machine and its load); ``--strict`` exits 1 when a
target is missed.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable

from bench import coldstart, cost, e2e, hotpath, outage, slow_kochava, transform_throughput
from bench.common import REPO_PACKAGES, Result, bench_cpu, conditions, precompile_repo

BENCHMARKS = ("transform", "hotpath", "coldstart", "slow-kochava", "e2e", "outage", "cost")


def _format_value(result: Result) -> str:
    if result.value != result.value:  # NaN
        return "n/a"
    if result.unit == "x":
        return f"{result.value:.2f}x"
    if result.unit == "$":
        return f"${result.value:.2f}"
    if abs(result.value) >= 100:
        return f"{result.value:,.0f} {result.unit}".strip()
    return f"{result.value:.1f} {result.unit}".strip()


_BOUND = re.compile(r"^\s*(<=|>=|<|>)\s*\$?([0-9][0-9,]*(?:\.[0-9]+)?)")


def distance(result: Result) -> str:
    """How far a figure is from its target (a bound such as ``<= 2.6x``, ``>= 40,000``, ``<= $1.50``): the share
    to spare when met, else the figure as a multiple of the target and the change it still needs; ``-`` when the
    target is not a number.

    >>> [distance(Result("b", "f", v, "<= 2.6x", v <= 2.6, "x")) for v in (4.7, 2.0)]
    ['1.81x the target: needs -45%', 'met, 23% to spare']
    >>> distance(Result("b", "f", 30_000, ">= 40,000", False)), distance(Result("b", "f", 1, "0", True))
    ('0.75x the target: needs +33%', '-')
    """
    match = _BOUND.match(result.target or "")
    value = result.value
    if match is None or value != value:
        return "-"
    limit = float(match.group(2).replace(",", ""))
    if limit <= 0 or value <= 0:
        return "-"
    if match.group(1).startswith("<"):
        if value <= limit:
            return f"met, {1 - value / limit:.0%} to spare"
        return f"{value / limit:.2f}x the target: needs -{1 - limit / value:.0%}"
    if value >= limit:
        return f"met, {value / limit - 1:.0%} to spare"
    return f"{value / limit:.2f}x the target: needs +{limit / value - 1:.0%}"


def table(results: list[Result]) -> str:
    rows = [("benchmark", "figure", "value", "target", "verdict", "distance")]
    rows += [(r.bench, r.what, _format_value(r), r.target or "-", r.verdict, distance(r)) for r in results]
    widths = [min(max(len(row[i]) for row in rows), 70) for i in range(6)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    details = [f"  [{r.bench}] {r.what}: {r.detail}" for r in results if r.detail]
    return "\n".join([*lines, "", "details:", *details])


def markdown(results: list[Result]) -> str:
    lines = ["| benchmark | figure | value | target | verdict |", "|---|---|---|---|---|"]
    lines += [f"| {r.bench} | {r.what} | {_format_value(r)} | {r.target or '-'} | {r.verdict} |" for r in results]
    return "\n".join(lines)


FULL_SIZES = {"events": 200_000, "repeat": 5, "runs": 9, "e2e_events": 2_000}
QUICK_SIZES = {"events": 20_000, "repeat": 1, "runs": 3, "e2e_events": 300}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", choices=[*BENCHMARKS, []], metavar="NAME", help=", ".join(BENCHMARKS))
    parser.add_argument("--events", type=int, help="transform: events in the mix (200,000; --quick 20,000)")
    parser.add_argument("--repeat", type=int, help="transform: repetitions (median; default 5, --quick 1)")
    parser.add_argument("--runs", type=int, help="coldstart: runs per handler (median; default 9, --quick 3)")
    parser.add_argument("--e2e-events", type=int, help="e2e: events posted (default 2,000, --quick 300)")
    parser.add_argument(
        "--quick", action="store_true", help="small inputs and few repetitions (a smoke run); explicit sizes win"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin child processes to one core")
    parser.add_argument("--markdown", action="store_true", help="also print a Markdown table of the results")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    selected = [name for name in BENCHMARKS if not args.only or name in args.only]
    cpu = None if args.no_pin else bench_cpu()
    run_conditions = conditions()
    run_conditions.pinned_cpu = cpu
    print("\n".join(run_conditions.lines()), flush=True)
    print(f"command: python -m bench {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip(), flush=True)
    compiled = precompile_repo()
    print(f"bytecode: {compiled}/{len(REPO_PACKAGES)} repo packages precompiled, like the deployed assets", flush=True)
    steps: dict[str, Callable[[], list[Result]]] = {
        "transform": lambda: transform_throughput.run(events=args.events, repeat=args.repeat, cpu=cpu),
        "hotpath": lambda: hotpath.run(events=args.events // 4, rounds=args.repeat + 2),
        "coldstart": lambda: coldstart.run(runs=args.runs, cpu=cpu),
        "slow-kochava": slow_kochava.run,
        "e2e": lambda: e2e.run(events=args.e2e_events),
        "outage": lambda: outage.run(events=100 if args.quick else outage.EVENTS),
        "cost": cost.run,
    }
    results: list[Result] = []
    for name in selected:
        print(f"\n== {name}", flush=True)
        started = time.perf_counter()
        try:
            results.extend(steps[name]())
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            print(f"  FAILED: {type(exc).__name__}: {exc}", flush=True)
            results.append(Result(name, "benchmark failed", float("nan"), "-", False, detail=f"{exc!r}"))
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    print()
    print(table(results))
    if args.markdown:
        print()
        print(markdown(results))
    print("\nload average after the run: " + ", ".join(f"{x:.2f}" for x in __import__("os").getloadavg()))
    missed = [r for r in results if r.ok is False]
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())

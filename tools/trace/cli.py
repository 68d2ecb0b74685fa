"""Command line of trace: arguments, finding the stack's resources, human and JSON output, exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from functions.names import FUNCTION_DELIVERER, FUNCTION_ENRICHER, IDEMPOTENCY_TABLE
from infra.resources import ResourceNames
from tools import add_version_option
from tools.dlq.core import format_age, mask_text
from tools.dlq.sqs import DlqClient, discover_queues
from tools.local import default_lambda_log
from tools.oncall import (
    AWS_ERRORS,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    STACK_DEFAULTS,
    AwsOptions,
    DiscoveryError,
    add_stack_options,
    duration,
    make_client,
    make_session,
    parse_with_defaults,
    positive_int,
    stage_of,
)
from tools.trace.core import Trace, decide, describe_searched, facts_for
from tools.trace.sources import (
    DlqSearch,
    IdempotencyTable,
    InsightsLogs,
    LocalLogFile,
    LogLine,
    LogSource,
    deployed_apps,
    local_apps,
    search_dlqs,
)

DEFAULT_SINCE_S = 24 * 3600.0

DESCRIPTION = """\
Where is event X? For each event uuid, one status: delivered (when, which kind, Kochava's HTTP status),
dead_lettered (which DLQ, reason, field, error, when), filtered or rejected (what the logs say), pending (still
in flight) or not_found (with what was searched, over which time range).

It reads the deliverer's idempotency record of the uuid (kept 15 days), the two DLQs (read-only: every message is
made visible again) and the two Lambdas' logs over --since: CloudWatch Logs Insights in AWS; against the local
stack (--endpoint-url), the log file tools.local writes. Device ids, IPs and tokens in errors are masked unless
--reveal."""

EPILOG = f"""\
examples:
  python -m tools.trace --stack kochava-prod 3f1c2a9e-8d1b-4c7e-9f00-1a2b3c4d5e6f
  python -m tools.trace --stack kochava-prod --since 3d UUID1 UUID2 UUID3
  python -m tools.trace --stack kochava-prod --json UUID | jq .status
  python -m tools.trace --endpoint-url http://127.0.0.1:4566 e2e-native-0001

exit codes:
  0    every uuid was found (any status but not_found)
  1    some uuid was not found (what was searched is printed), or a source could not be searched (the
       answers are printed, but may be incomplete: e.g. a record unreadable, a DLQ message taken for the answer)
  2    bad arguments
  130  interrupted (Ctrl-C): every DLQ message looked at was made visible again

local stack: logs are read from the file tools.local writes for that endpoint
({default_lambda_log("http://127.0.0.1:PORT")}) unless --lambda-log PATH.
runbook: docs/runbook.md ("An app team says event X is missing")"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.trace",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
    )
    add_version_option(parser)
    add_stack_options(parser.add_argument_group("where the stack is (as tools.dlq)"))
    out = parser.add_argument_group("what and how")
    out.add_argument("uuids", nargs="+", metavar="UUID", help="event uuids (native uuid, Segment messageId)")
    out.add_argument("--json", action="store_true", default=False, help="one JSON object per uuid, one per line")
    out.add_argument(
        "--since",
        type=duration,
        default=DEFAULT_SINCE_S,
        metavar="DURATION",
        help="how far back to search the logs: 30m, 6h, 3d (default 24h)",
    )
    out.add_argument(
        "--lambda-log",
        metavar="PATH",
        default=None,
        help="the Lambdas' JSON log file to read instead of CloudWatch (with --endpoint-url, default: the one "
        f"tools.local writes for that endpoint, {default_lambda_log('http://127.0.0.1:PORT')})",
    )
    out.add_argument("--reveal", action="store_true", default=False, help="show device ids, IPs and tokens unmasked")
    out.add_argument(
        "--app",
        action="append",
        default=[],
        metavar="GUID",
        help="a Kochava app GUID to look the idempotency record up for (default: the deployed deliverer's)",
    )
    out.add_argument(
        "--scan-limit",
        type=positive_int,
        default=100_000,
        metavar="N",
        help="look at no more than N messages per DLQ (default 100000)",
    )
    out.add_argument("--wait-time-seconds", type=int, default=1, help=argparse.SUPPRESS)
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    args = parse_with_defaults(build_parser(), argv, STACK_DEFAULTS)
    args.uuids = list(dict.fromkeys(u.strip() for u in args.uuids if u.strip()))
    return args


# ------------------------------------------------------------------------------------------------------ sources


@dataclass
class Sources:
    """Where this run looks; a source that failed to set up is None, with its error in ``errors``."""

    names: ResourceNames
    table: IdempotencyTable | None
    apps: list[str]
    dlq_client: DlqClient | None
    dlq_pairs: list[Any]
    logs: LogSource | None
    errors: dict[str, str]
    notes: list[str] = field(default_factory=list)


def build_sources(args: argparse.Namespace, now_ms: int) -> Sources:
    stage = stage_of(stack=args.stack, stage=args.stage, endpoint_url=args.endpoint_url)
    if stage is None:
        raise DiscoveryError(
            "where is the stack? give --stack kochava-<stage>, --stage S, or --endpoint-url URL (the local stack); "
            "with a stack not named kochava-<stage>, add --stage"
        )
    names = ResourceNames(stage)
    opts = AwsOptions.of(args)
    session = make_session(opts)
    errors: dict[str, str] = {}
    sources = Sources(names, None, list(args.app), None, [], None, errors)
    sources.table = IdempotencyTable(make_client(session, "dynamodb", opts), names.table(IDEMPOTENCY_TABLE))
    if not sources.apps:
        try:
            sources.apps = _apps(args, session, opts, names)
        except AWS_ERRORS as exc:  # today's key does not need the app: say so, go on
            sources.notes.append(f"app GUIDs of the deployed deliverer unknown ({mask_text(str(exc))}): use --app")
    try:
        sqs, sources.dlq_pairs = discover_queues(session, opts, stack=args.stack, stage=stage)
        sources.dlq_client = DlqClient(sqs, wait_time_s=args.wait_time_seconds)
    except (DiscoveryError, *AWS_ERRORS) as exc:
        errors["dlqs"] = mask_text(str(exc))
    start_ms = now_ms - int(args.since * 1000)
    if args.endpoint_url or args.lambda_log:  # a log file given is read, whatever the stack
        path = Path(args.lambda_log) if args.lambda_log else default_lambda_log(args.endpoint_url)
        sources.logs = LocalLogFile(path, start_ms, now_ms)
    else:
        groups = [f"/aws/lambda/{names.function(f)}" for f in (FUNCTION_ENRICHER, FUNCTION_DELIVERER)]
        sources.logs = InsightsLogs(make_client(session, "logs", opts), groups, start_ms, now_ms)
    return sources


def _apps(args: argparse.Namespace, session: Any, opts: AwsOptions, names: ResourceNames) -> list[str]:
    """The app GUIDs to compute idempotency keys for: the local stack's, or the deployed deliverer's."""
    if args.endpoint_url:
        return local_apps(os.environ)
    return deployed_apps(make_client(session, "lambda", opts), names.function(FUNCTION_DELIVERER))


# ------------------------------------------------------------------------------------------------------ tracing


def trace_all(sources: Sources, uuids: Sequence[str], *, scan_limit: int, reveal: bool) -> list[Trace]:
    """One :class:`Trace` per uuid, in the order given. A source that fails is reported, not fatal."""
    errors = dict(sources.errors)
    records: dict[str, list[Any]] = {u: [] for u in uuids}
    if sources.table is not None:
        try:
            for uuid in uuids:
                records[uuid] = sources.table.find(uuid, sources.apps)
        except AWS_ERRORS as exc:
            errors["idempotency"] = mask_text(str(exc))
    dlqs = DlqSearch(hits={u: [] for u in uuids})
    if sources.dlq_client is not None:
        try:
            dlqs = search_dlqs(sources.dlq_client, sources.dlq_pairs, uuids, scan_limit)
        except AWS_ERRORS as exc:
            errors["dlqs"] = mask_text(str(exc))
    lines: list[LogLine] = []
    if sources.logs is not None:
        try:
            lines = sources.logs.lines(uuids)
        except (*AWS_ERRORS, OSError, RuntimeError) as exc:
            errors["logs"] = mask_text(str(exc))
    searched = _searched(sources, dlqs, errors)
    return [
        decide(
            uuid,
            records=records[uuid],
            dlq_hits=dlqs.hits.get(uuid, []),
            facts=facts_for(uuid, lines),
            searched=searched,
            reveal=reveal,
        )
        for uuid in uuids
    ]


def _searched(sources: Sources, dlqs: DlqSearch, errors: dict[str, str]) -> dict[str, Any]:
    table = sources.names.table(IDEMPOTENCY_TABLE)
    apps = f", apps {', '.join(sources.apps)}" if sources.apps else ""
    notes = "".join(f"; {note}" for note in sources.notes)
    searched: dict[str, Any] = {
        "idempotency": {
            "table": table,
            "text": f"{table} (keys of uuid + kind install, event, identityLink{apps}{notes})",
        },
        "dlqs": {"scanned": dlqs.scanned, "truncated": dlqs.truncated, "text": dlqs.describe()},
        "logs": {"text": sources.logs.describe() if sources.logs is not None else "not searched"},
    }
    for name, error in errors.items():
        searched[name] = {**searched.get(name, {}), "error": error}
        searched[name]["text"] = f"FAILED: {error}"
    return searched


# ------------------------------------------------------------------------------------------------------- output


def print_trace(trace: Trace, out: TextIO, now_ms: int) -> None:
    print(f"{trace.uuid}  {trace.status}", file=out)
    print(f"  {trace.summary}", file=out)
    shown = {k: v for k, v in trace.details.items() if v not in (None, "") and k != "source"}
    for key, value in shown.items():
        print(f"  {key:<14}{value}", file=out)
    if trace.facts:
        print("  log:", file=out)
        for fact in trace.facts:
            extra = "  ".join(f"{k}={v}" for k, v in fact.details.items())
            age = f"({format_age((now_ms - fact.at_ms) / 1000)} ago)" if fact.at_ms else ""
            when = fact.to_json()["at"] or "?"
            print(f"    {when} {age:<12} {fact.service:<10} {fact.what:<14} {fact.message}  {extra}".rstrip(), file=out)
    if not trace.found or any("error" in v for v in trace.searched.values() if isinstance(v, dict)):
        print("  searched:", file=out)
        for line in describe_searched(trace.searched):
            print(f"    {line}", file=out)
    print(file=out)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    now_ms: int | None = None,
) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    try:
        sources = build_sources(args, now)
        traces = trace_all(sources, args.uuids, scan_limit=args.scan_limit, reveal=args.reveal)
    except (DiscoveryError, *AWS_ERRORS) as exc:
        print(f"error: {mask_text(str(exc))}", file=err)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: every DLQ message looked at was made visible again", file=err)
        return EXIT_INTERRUPTED
    for trace in traces:
        if args.json:
            out.write(json.dumps(trace.to_json(), ensure_ascii=False) + "\n")
        else:
            print_trace(trace, out, now)
    incomplete = [name for name, what in traces[0].searched.items() if isinstance(what, dict) and "error" in what]
    if incomplete:
        print(f"error: could not search {', '.join(incomplete)}: the answers may be incomplete", file=err)
    return EXIT_OK if all(t.found for t in traces) and not incomplete else EXIT_ERROR

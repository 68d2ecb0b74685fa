"""Command line of the DLQ tool: argument parsing, queue discovery, human and JSON output, exit codes."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any, TextIO

from functions.names import ATTR_ERROR, ATTR_FIELD, ATTR_RESPONSE_BODY, ATTR_STATUS, QUEUES
from functions.pipeline.jsontext import escape_surrogates
from tools import robust
from tools.dlq.core import (
    REASON_ADVICE,
    DlqMessage,
    Selection,
    body_for_json,
    format_age,
    group,
    mask_text,
    message_summary,
    refusal_why,
    render_body,
    shown_attributes,
)
from tools.dlq.ops import (
    PurgeReport,
    ReplayReport,
    Throttle,
    purge,
    replay_all,
    replay_messages,
    scan,
    wrong_source,
)
from tools.dlq.sqs import DlqClient, QueuePair, discover_queues
from tools.oncall import (
    AWS_ERRORS,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    LOCAL_STAGE,
    STACK_DEFAULTS,
    AwsOptions,
    DiscoveryError,
    add_stack_options,
    duration,
    make_session,
    parse_with_defaults,
    positive_int,
)

MAX_MOVE_RATE = 500  # the SQS limit of MaxNumberOfMessagesPerSecond

DESCRIPTION = """\
Inspect, replay and purge the pipeline's dead-letter queues (the ingest DLQ, fed by the enricher, and the delivery
DLQ, fed by the deliverer). Nothing is consumed by looking: every message the tool receives is made visible again
when it is done, even on Ctrl-C. A replayed message is deleted from the DLQ only after SQS accepted its copy on the
source queue, so an interruption can duplicate a message but never lose one (the deliverer sends each event uuid
and kind to Kochava at most once, for 15 days).

Queues: --stack NAME reads the stack's outputs; --queue-url URL takes one DLQ; --endpoint-url URL alone (the local
stack, `make local`) finds the queues by the project's names for --stage (default: local); --stage alone does the
same against AWS."""

EPILOG = """\
examples:
  python -m tools.dlq --stack kochava-prod list
  python -m tools.dlq --endpoint-url http://127.0.0.1:5000 list
  python -m tools.dlq --stack kochava-prod show --limit 3
  python -m tools.dlq --stack kochava-prod show 3f1c2a9e-...  --reveal
  python -m tools.dlq --stack kochava-prod replay --reason retries_exhausted --dry-run
  python -m tools.dlq --stack kochava-prod replay --reason missing_app_id --older-than 2h
  python -m tools.dlq --stack kochava-prod replay --rate 50          # everything, 50 messages/s
  python -m tools.dlq --stack kochava-prod --dlq ingest purge --reason invalid_event
  python -m tools.dlq --stack kochava-prod --json replay --event-name Purchase | jq .

selectors (replay, purge, show, list): values of one selector are OR-ed (--reason a --reason b), different
selectors AND-ed. Reasons: invalid_json, invalid_body, invalid_event, no_device_identifier, payload_too_large (never
replayed without --force: they would fail again; nor is a body cut to fit the DLQ, truncated=true), missing_app_id,
kochava_rejected, kochava_bad_response, retries_exhausted, redriven (moved by SQS itself: no reason attribute).

exit codes:
  0    done (list/show: something or nothing to show; replay/purge: everything selected was handled)
  1    an AWS error, queues not found, an ID given to `show` not found, or some messages could not be moved /
       deleted (or were sent but not deleted: see the summary)
  2    bad arguments
  3    refused: non-replayable messages without --force (the others were replayed; with --dry-run: would be
       refused), a target queue whose redrive policy does not point at that DLQ (nothing moved; --force overrides),
       or purge not confirmed / not confirmable (no terminal and no --yes)
  130  interrupted (Ctrl-C / SIGTERM): hidden messages were made visible again; see the summary

runbook: docs/runbook.md"""


# ------------------------------------------------------------------------------------------------------ parsing


# Defaults of the options every command accepts (before or after the command name).
COMMON_DEFAULTS: dict[str, Any] = {
    **STACK_DEFAULTS,
    "queue_url": None,
    "source_url": None,
    "dlq": None,
    "json": False,
    "visibility_timeout": 300,
    "wait_time_seconds": 1,
    "scan_limit": 100_000,
}


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    where = common.add_argument_group("where the queues are")
    add_stack_options(where)
    where.add_argument("--queue-url", metavar="URL", help="one DLQ, by URL (its source: --source-url or SQS)")
    where.add_argument("--source-url", metavar="URL", help="with --queue-url: the queue to replay into")
    where.add_argument("--dlq", choices=[spec.key for spec in QUEUES], help="only this DLQ (default: every DLQ found)")
    out = common.add_argument_group("output and tuning")
    out.add_argument("--json", action="store_true", help="one JSON document on stdout (for scripts)")
    out.add_argument(
        "--visibility-timeout",
        type=positive_int,
        metavar="S",
        help="seconds a received message stays hidden while the tool works (default 300; restored at the end)",
    )
    out.add_argument(
        "--scan-limit",
        type=positive_int,
        metavar="N",
        help="look at no more than N messages per DLQ and run (default 100000; SQS allows 120000 in flight)",
    )
    out.add_argument("--wait-time-seconds", type=int, metavar="S", help=argparse.SUPPRESS)
    return common


def _selectors() -> argparse.ArgumentParser:
    sel = argparse.ArgumentParser(add_help=False)
    group_ = sel.add_argument_group("selection (repeatable; default: everything)")
    group_.add_argument("--reason", action="append", default=[], metavar="R", help="dead-letter reason")
    group_.add_argument("--event-name", action="append", default=[], metavar="N", help="event name (any case)")
    group_.add_argument(
        "--older-than", type=duration, metavar="DURATION", help="first failed at least this long ago: 30m, 2h, 3d"
    )
    group_.add_argument("--id", action="append", default=[], dest="ids", metavar="ID", help="SQS message id")
    return sel


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100)


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m tools.dlq", description=DESCRIPTION, epilog=EPILOG, formatter_class=fmt, parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser(
        "list",
        parents=[common, _selectors()],
        formatter_class=fmt,
        help="counts per DLQ by stage, reason, event name and age (read-only)",
        description=_wrap(
            "Counts per DLQ, grouped by stage, reason, event name and age bucket, oldest first. "
            "Read-only: every message is made visible again."
        ),
    )

    show = sub.add_parser(
        "show",
        parents=[common, _selectors()],
        formatter_class=fmt,
        help="full messages: body, reason attributes, receive count, first failure",
        description=_wrap(
            "Show messages in full. Personal data (device and advertising ids, IP addresses, user agents, user "
            "ids, consent strings, referrers, AdServices tokens, e-mail addresses) is masked (first 4 characters "
            "and the length) unless --reveal. Read-only."
        ),
    )
    show.add_argument("message_ids", nargs="*", metavar="ID", help="SQS message ids (as `list`/`replay` print them)")
    show.add_argument("--limit", type=positive_int, default=None, metavar="N", help="at most N messages (default 10)")
    show.add_argument("--reveal", action="store_true", help="show personal data unmasked")

    replay = sub.add_parser(
        "replay",
        parents=[common, _selectors()],
        formatter_class=fmt,
        help="send messages back to their source queue",
        description=_wrap(
            "Without selectors: the whole DLQ, with SQS StartMessageMoveTask where available (falls back "
            "to receive -> send -> delete, e.g. on the local stack). With selectors: receive -> send to the source "
            "queue (original attributes, without the DLQ-only ones) -> delete from the DLQ only after the send "
            "succeeded. Messages with a non-replayable reason are refused unless --force, and so is a target queue "
            "whose redrive policy does not dead-letter into that DLQ (nothing is moved). Only messages already in "
            "the DLQ when it starts are replayed, so one failing again is never replayed twice in a run."
        ),
    )
    replay.add_argument("--dry-run", action="store_true", help="show what would move; change nothing")
    replay.add_argument(
        "--rate", type=positive_int, metavar="N", help=f"at most N messages per second (1..{MAX_MOVE_RATE})"
    )
    replay.add_argument(
        "--force",
        action="store_true",
        help="also replay non-replayable (invalid) events, or into a queue that is not the DLQ's source",
    )
    replay.add_argument(
        "--no-move-task", action="store_true", help="never use StartMessageMoveTask: always receive -> send -> delete"
    )
    replay.add_argument("--no-wait", action="store_true", help="start the move task and return without waiting")

    purge_ = sub.add_parser(
        "purge",
        parents=[common, _selectors()],
        formatter_class=fmt,
        help="delete selected messages (asks first)",
        description=_wrap(
            "Delete the selected messages, printing them first. Asks for confirmation on a terminal; "
            "without a terminal it refuses unless --yes. Needs a selector or --all."
        ),
    )
    purge_.add_argument("--all", action="store_true", help="select every message (no selector needed)")
    purge_.add_argument("--yes", action="store_true", help="do not ask")
    purge_.add_argument("--dry-run", action="store_true", help="print what would be deleted; delete nothing")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parse_with_defaults(parser, argv, COMMON_DEFAULTS)
    if getattr(args, "rate", None) is not None and args.rate > MAX_MOVE_RATE:
        parser.error(f"--rate: at most {MAX_MOVE_RATE} messages per second")
    if args.command == "purge" and not args.all and _selection(args).is_everything:
        parser.error("purge needs a selector (--reason, --event-name, --older-than, --id) or --all")
    if args.queue_url and args.stack:
        parser.error("give --stack or --queue-url, not both")
    return args


def _selection(args: argparse.Namespace) -> Selection:
    ids = list(args.ids) + list(getattr(args, "message_ids", []) or [])
    return Selection.of(reasons=args.reason, event_names=args.event_name, ids=ids, older_than_s=args.older_than)


# ---------------------------------------------------------------------------------------------------- discovery


def discover(args: argparse.Namespace) -> tuple[DlqClient, list[QueuePair]]:
    opts = AwsOptions.of(args)
    stage = args.stage or (LOCAL_STAGE if args.endpoint_url else None)
    sqs, pairs = discover_queues(
        make_session(opts), opts, stack=args.stack, stage=stage, queue_url=args.queue_url, source_url=args.source_url
    )
    if args.dlq:
        pairs = [p for p in pairs if p.key == args.dlq]
        if not pairs:
            raise DiscoveryError(f"no {args.dlq} DLQ among the queues found")
    client = DlqClient(sqs, visibility_timeout_s=args.visibility_timeout, wait_time_s=args.wait_time_seconds)
    return client, pairs


# ------------------------------------------------------------------------------------------------------- output


@dataclass
class Ui:
    """Where output goes: results on ``out`` (human text or one JSON document), notes and prompts on ``err``."""

    out: TextIO
    err: TextIO
    json: bool
    stdin: TextIO

    # Every text goes through escape_surrogates: a body or event name read from an escaped lone surrogate
    # ("\ud800") holds a character no terminal encoding can write; it is shown as the escape received.

    def line(self, text: str = "") -> None:
        if not self.json:
            print(escape_surrogates(text), file=self.out)

    def note(self, text: str) -> None:
        print(escape_surrogates(text), file=self.err)

    def document(self, doc: dict[str, Any]) -> None:
        if self.json:
            self.out.write(escape_surrogates(json.dumps(doc, indent=2, ensure_ascii=False)))
            self.out.write("\n")

    def progress(self, label: str, total: int) -> ProgressBar:
        return ProgressBar(self.err, label, total)


class ProgressBar:
    """``label [#######.......] 70/100`` on stderr, redrawn in place; silent when stderr is not a terminal."""

    WIDTH = 30

    def __init__(self, stream: TextIO, label: str, total: int) -> None:
        self.stream = stream
        self.label = label
        self.total = max(total, 0)
        self.enabled = _isatty(stream)
        self.drawn = False

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        total = max(self.total, done, 1)
        filled = int(self.WIDTH * done / total)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {done}/{total}")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _iso(ms: int | None) -> str | None:
    return robust.iso(ms)


def _table(rows: list[list[str]], headers: list[str]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers).rstrip(), *(fmt.format(*row).rstrip() for row in rows)]


MAX_LISTED = 100  # message lines printed per DLQ by replay --dry-run / purge; --json always has them all


def _message_lines(summaries: Sequence[dict[str, Any]], indent: str = "    ") -> list[str]:
    """One line per message (id, reason, event name, age), after a count per reason and event name."""
    counts: dict[tuple[str, str], int] = {}
    for s in summaries:
        counts[(s["reason"], s["event_name"])] = counts.get((s["reason"], s["event_name"]), 0) + 1
    lines = [f"{indent}{n:>6} x {reason} / {name}" for (reason, name), n in sorted(counts.items())]
    lines += [
        f"{indent}{s['id']}  {s['reason']}  {s['event_name']}  {format_age(s['age_s'])} old"
        for s in summaries[:MAX_LISTED]
    ]
    if len(summaries) > MAX_LISTED:
        lines.append(f"{indent}... and {len(summaries) - MAX_LISTED} more (--json lists them all)")
    return lines


def _pair_json(pair: QueuePair) -> dict[str, Any]:
    return {"dlq": pair.dlq_name, "dlq_url": pair.dlq_url, "source": pair.source_name, "source_url": pair.source_url}


# ----------------------------------------------------------------------------------------------------- commands


@dataclass
class Context:
    client: DlqClient
    pairs: list[QueuePair]
    ui: Ui
    now_ms: int
    scan_limit: int | None = None


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    selection = _selection(args)
    queues = []
    for pair in ctx.pairs:
        approx = ctx.client.approximate_count(pair.dlq_url)
        seen = scan(ctx.client, pair, ctx.scan_limit, keep=lambda m: selection.matches(m, ctx.now_ms))
        messages = seen.messages
        groups = group(messages, ctx.now_ms)
        queues.append(
            {
                **_pair_json(pair),
                "approximate_messages": approx,
                "scanned": len(messages),
                "truncated": seen.truncated,
                "groups": [g.to_json() for g in groups],
            }
        )
        ctx.ui.line(f"{pair.dlq_name}  (replays into {pair.source_name or '?'})")
        ctx.ui.line(f"  ApproximateNumberOfMessages: {approx}   seen now: {len(messages)}")
        if seen.truncated:
            ctx.ui.line(f"  (stopped after {ctx.scan_limit} messages: --scan-limit; counts are for those only)")
        if groups:
            rows = [
                [g.stage, g.reason, g.event_name, g.age, str(g.count), format_age(g.oldest_age_s), _advice(g.reason)]
                for g in groups
            ]
            headers = ["stage", "reason", "event name", "age", "count", "oldest", "what to do"]
            for row in _table(rows, headers):
                ctx.ui.line("  " + row)
            replayable = sum(g.count for g in groups if g.replayable)
            ctx.ui.line(f"  replayable {replayable}, not replayable {len(messages) - replayable}")
        ctx.ui.line()
    ctx.ui.document({"command": "list", "now_ms": ctx.now_ms, "queues": queues})
    return EXIT_OK


def _advice(reason: str) -> str:
    return REASON_ADVICE.get(reason, "unknown reason: read the messages (`show`)")


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    selection = _selection(args)
    wanted = set(selection.ids)
    limit = args.limit if args.limit is not None else (len(wanted) if wanted else 10)
    found: list[tuple[QueuePair, DlqMessage]] = []
    for pair in ctx.pairs:
        if len(found) >= limit:
            break
        seen = scan(
            ctx.client,
            pair,
            ctx.scan_limit,
            keep=lambda m: selection.matches(m, ctx.now_ms),
            enough=limit - len(found),
        )
        found.extend((pair, msg) for msg in seen.messages)
    not_found = sorted(wanted - {m.message_id for _, m in found})
    docs = []
    for i, (pair, msg) in enumerate(found, 1):
        doc = _message_json(pair, msg, ctx.now_ms, reveal=args.reveal)
        docs.append(doc)
        _print_message(ctx.ui, i, len(found), doc, msg, reveal=args.reveal)
    for message_id in not_found:
        ctx.ui.note(f"not found: {message_id}")
    if not found and not not_found:
        ctx.ui.line("no message matches")
    ctx.ui.document({"command": "show", "messages": docs, "not_found": not_found, "revealed": bool(args.reveal)})
    return EXIT_ERROR if not_found else EXIT_OK


def _message_json(pair: QueuePair, msg: DlqMessage, now_ms: int, *, reveal: bool) -> dict[str, Any]:
    return {
        **message_summary(msg, now_ms),
        "dlq": pair.dlq_name,
        "receive_count": msg.receive_count,
        "receive_count_includes_looks": True,  # SQS's ApproximateReceiveCount: every look at a DLQ counts
        "first_failure_ms": msg.first_failure_ms,
        "first_failure": _iso(msg.first_failure_ms),
        "sent_at": _iso(msg.system.get("SentTimestamp")),
        "attributes": shown_attributes(msg, reveal=reveal),
        "body": body_for_json(msg.body, reveal=reveal),
    }


def _print_message(ui: Ui, i: int, n: int, doc: dict[str, Any], msg: DlqMessage, *, reveal: bool) -> None:
    attrs: dict[str, str] = doc["attributes"]
    ui.line(f"--- {i}/{n}  {doc['dlq']}  id {doc['id']}")
    ui.line(f"reason         {doc['reason']}  ({_advice(doc['reason'])})")
    ui.line(f"stage          {doc['stage']}")
    ui.line(f"event name     {doc['event_name']}")
    for name, label in ((ATTR_FIELD, "field"), (ATTR_ERROR, "error"), (ATTR_STATUS, "http status")):
        if name in attrs:
            ui.line(f"{label:<15}{attrs[name]}")
    if ATTR_RESPONSE_BODY in attrs:
        ui.line(f"response body  {attrs[ATTR_RESPONSE_BODY]}")
    ui.line(f"receive count  {doc['receive_count']}  (SQS ApproximateReceiveCount; looking counts too)")
    first = doc["first_failure"]
    ui.line(f"first failure  {first or '?'}" + (f"  ({format_age(doc['age_s'])} ago)" if first else ""))
    shown = ("stage", "reason", ATTR_FIELD, ATTR_ERROR, ATTR_STATUS, ATTR_RESPONSE_BODY)
    others = {k: v for k, v in attrs.items() if k not in shown}
    ui.line("attributes     " + "  ".join(f"{k}={v}" for k, v in others.items()))
    text, _ = render_body(msg.body, reveal=reveal)
    ui.line("body" + ("" if reveal else " (personal data masked; --reveal to see it)") + ":")
    ui.line(text)
    ui.line()


def cmd_replay(ctx: Context, args: argparse.Namespace) -> int:
    selection = _selection(args)
    reports: list[ReplayReport] = []
    code = EXIT_OK
    try:
        for pair in ctx.pairs:
            report = ReplayReport(dlq=pair.dlq_name, source=pair.source_name)
            reports.append(report)
            if pair.source_url is None:
                report.failed.append({"error": "source queue unknown: pass --source-url"})
                continue
            report.wrong_queue = None if args.force else wrong_source(ctx.client, pair)
            if report.wrong_queue:
                continue
            bar = ctx.ui.progress(f"{pair.dlq_name} -> {pair.source_name}", ctx.client.approximate_count(pair.dlq_url))
            try:
                if selection.is_everything and not args.dry_run:
                    replay_all(
                        ctx.client,
                        pair,
                        report,
                        now_ms=ctx.now_ms,
                        force=args.force,
                        rate=args.rate,
                        use_move_task=not args.no_move_task,
                        wait=not args.no_wait,
                        progress=bar,
                        limit=ctx.scan_limit,
                    )
                else:
                    replay_messages(
                        ctx.client,
                        pair,
                        selection,
                        report,
                        now_ms=ctx.now_ms,
                        force=args.force,
                        dry_run=args.dry_run,
                        throttle=Throttle(args.rate),
                        progress=bar,
                        limit=ctx.scan_limit,
                    )
            finally:
                bar.close()
    except KeyboardInterrupt:
        if reports:
            reports[-1].interrupted = True
            task = reports[-1].move_task
            if task:
                reports[-1].notes.append(
                    "the move task keeps running on SQS; to stop it: "
                    f"aws sqs cancel-message-move-task --task-handle {task.get('handle')}"
                )
        code = EXIT_INTERRUPTED
    except AWS_ERRORS as exc:
        ctx.ui.note(f"error: {mask_text(str(exc))}")
        if reports:
            reports[-1].interrupted = True
            reports[-1].notes.append(f"stopped by an AWS error: {exc}")
        code = EXIT_ERROR
    if code == EXIT_OK:
        if any(r.failed or r.sent_not_deleted for r in reports):
            code = EXIT_ERROR
        elif any(r.refused or r.wrong_queue for r in reports):
            code = EXIT_REFUSED
    _print_replay(ctx.ui, reports, selection, dry_run=args.dry_run)
    ctx.ui.document(
        {
            "command": "replay",
            "selection": selection.describe(),
            "dry_run": bool(args.dry_run),
            "queues": [r.to_json() for r in reports],
            "exit_code": code,
        }
    )
    return code


def _print_replay(ui: Ui, reports: list[ReplayReport], selection: Selection, *, dry_run: bool) -> None:
    ui.line(f"replay of {selection.describe()}" + (" (dry run: nothing changed)" if dry_run else ""))
    for r in reports:
        ui.line(f"{r.dlq} -> {r.source or '?'}" + (f"  [{r.mode}]" if not dry_run and not r.wrong_queue else ""))
        if r.wrong_queue:
            ui.line(f"  REFUSED, nothing moved: {r.wrong_queue}")
            if ui.json:
                ui.note(f"error: {r.wrong_queue}")
            continue
        for note in r.notes:
            ui.line(f"  note: {note}")
        if dry_run:
            ui.line(f"  would move {len(r.would_move)}, would refuse {len(r.refused)}, not selected {r.not_selected}")
            for text in _message_lines(r.would_move):
                ui.line(text)
        else:
            ui.line(
                f"  moved {r.moved_count}, refused {len(r.refused)}, failed {len(r.failed)}, "
                f"not selected (left in the DLQ) {r.not_selected}"
                + (f", arrived while replaying (left) {r.arrived_during_run}" if r.arrived_during_run else "")
            )
        if r.refused:
            reasons_ = sorted({s["reason"] for s in r.refused})
            for reason in reasons_:
                count = sum(1 for s in r.refused if s["reason"] == reason)
                ui.line(f"  refused {count} ({reason}): {refusal_why(reason)}")
        for f in r.failed:
            ui.line(f"  FAILED {f.get('id', '')} {f.get('error', '')}".rstrip())
        if r.sent_not_deleted:
            ui.line(
                f"  {len(r.sent_not_deleted)} message(s) were sent to {r.source} but are still in the DLQ "
                "(interrupted before the delete): replaying them again duplicates them, which the deliverer's "
                "idempotency absorbs; nothing was lost"
            )
            for s in r.sent_not_deleted:
                ui.line(f"    {s['id']}")
        if r.interrupted:
            ui.line("  INTERRUPTED: messages not moved are still in the DLQ (made visible again)")
        if r.move_task:
            ui.line(f"  move task {r.move_task.get('handle')}: {r.move_task.get('status')}")


def cmd_purge(ctx: Context, args: argparse.Namespace) -> int:
    selection = Selection() if args.all and _selection(args).is_everything else _selection(args)
    interactive = _isatty(ctx.ui.stdin) and _isatty(ctx.ui.err)
    if not (args.yes or args.dry_run or interactive):
        ctx.ui.note("refusing to purge: not a terminal, so nobody can confirm; pass --yes to purge without asking")
        ctx.ui.document({"command": "purge", "refused": "not interactive and no --yes", "exit_code": EXIT_REFUSED})
        return EXIT_REFUSED

    def confirm(pair: QueuePair, chosen: list[DlqMessage]) -> bool:
        _print_purge_list(ctx.ui, pair, chosen, ctx.now_ms)
        if args.yes:
            return True
        ctx.ui.err.write(f"delete these {len(chosen)} message(s) from {pair.dlq_name} for good? type 'yes': ")
        ctx.ui.err.flush()
        return ctx.ui.stdin.readline().strip().lower() == "yes"

    reports: list[PurgeReport] = []
    for pair in ctx.pairs:
        report = purge(
            ctx.client, pair, selection, now_ms=ctx.now_ms, confirm=confirm, dry_run=args.dry_run, limit=ctx.scan_limit
        )
        if report.truncated:
            ctx.ui.line(f"{pair.dlq_name}: stopped after {ctx.scan_limit} messages (--scan-limit): run again")
        reports.append(report)
        if args.dry_run:
            ui_list = report.selected
            ctx.ui.line(f"{pair.dlq_name}: would delete {len(ui_list)} (dry run: nothing changed)")
            for text in _message_lines(ui_list, indent="  "):
                ctx.ui.line(text)
        elif not report.selected:
            ctx.ui.line(f"{pair.dlq_name}: nothing matches {selection.describe()}")
        elif report.confirmed:
            ctx.ui.line(f"{pair.dlq_name}: deleted {len(report.deleted)}, could not delete {len(report.not_deleted)}")
        else:
            ctx.ui.line(f"{pair.dlq_name}: not confirmed, nothing deleted")
    code = EXIT_OK
    if any(r.not_deleted for r in reports):
        code = EXIT_ERROR
    elif any(r.selected and not r.confirmed for r in reports) and not args.dry_run:
        code = EXIT_REFUSED
    ctx.ui.document(
        {
            "command": "purge",
            "selection": selection.describe(),
            "queues": [r.to_json() for r in reports],
            "exit_code": code,
        }
    )
    return code


def _print_purge_list(ui: Ui, pair: QueuePair, chosen: list[DlqMessage], now_ms: int) -> None:
    # On the terminal even with --json: the operator must see what goes before confirming.
    stream = ui.err if ui.json else ui.out
    print(f"{pair.dlq_name}: deleting {len(chosen)} message(s):", file=stream)
    for text in _message_lines([message_summary(m, now_ms) for m in chosen], indent="  "):
        print(escape_surrogates(text), file=stream)
    stream.flush()


COMMANDS: dict[str, Callable[[Context, argparse.Namespace], int]] = {
    "list": cmd_list,
    "show": cmd_show,
    "replay": cmd_replay,
    "purge": cmd_purge,
}


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # run the same clean-up as Ctrl-C (visibility restored)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
    now_ms: int | None = None,
) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    ui = Ui(out=stdout or sys.stdout, err=stderr or sys.stderr, json=args.json, stdin=stdin or sys.stdin)
    try:
        previous: Any = signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:  # not the main thread (e.g. called from a test thread): no handler
        previous = None
    try:
        client, pairs = discover(args)
        ctx = Context(
            client=client,
            pairs=pairs,
            ui=ui,
            now_ms=now_ms if now_ms is not None else _now_ms(),
            scan_limit=args.scan_limit,
        )
        return COMMANDS[args.command](ctx, args)
    except DiscoveryError as exc:
        return _fail(ui, str(exc), EXIT_ERROR)
    except AWS_ERRORS as exc:
        return _fail(ui, mask_text(str(exc)), EXIT_ERROR)
    except ValueError as exc:
        return _fail(ui, str(exc), EXIT_ERROR)
    except KeyboardInterrupt:
        return _fail(ui, "interrupted: every message the tool had hidden was made visible again", EXIT_INTERRUPTED)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _fail(ui: Ui, message: str, code: int) -> int:
    ui.note(f"error: {message}")
    ui.document({"error": message, "exit_code": code})
    return code


def _now_ms() -> int:
    return int(time.time() * 1000)

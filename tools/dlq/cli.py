"""Command line of the DLQ tool: argument parsing, queue discovery, dispatch to the commands (``cmd_list``,
``cmd_show``, ``cmd_replay``, ``cmd_purge``: one module each), exit codes. Output and signals: :mod:`tools.oncall`."""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from functions.names import QUEUES
from tools import add_version_option
from tools.dlq.cmd_list import cmd_list
from tools.dlq.cmd_purge import cmd_purge
from tools.dlq.cmd_replay import cmd_replay
from tools.dlq.cmd_show import cmd_show
from tools.dlq.command import Context, selection_of
from tools.dlq.core import mask_text
from tools.dlq.sqs import DlqClient, QueuePair, discover_queues
from tools.oncall import (
    AWS_ERRORS,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
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
from tools.oncall.signals import sigterm_as_interrupt
from tools.oncall.ui import Ui, fail

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
    add_version_option(parser)
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
    if args.command == "purge" and not args.all and selection_of(args).is_everything:
        parser.error("purge needs a selector (--reason, --event-name, --older-than, --id) or --all")
    if args.queue_url and args.stack:
        parser.error("give --stack or --queue-url, not both")
    return args


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


COMMANDS: dict[str, Callable[[Context, argparse.Namespace], int]] = {
    "list": cmd_list,
    "show": cmd_show,
    "replay": cmd_replay,
    "purge": cmd_purge,
}


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
    with sigterm_as_interrupt():
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
            return fail(ui, str(exc), EXIT_ERROR)
        except AWS_ERRORS as exc:
            return fail(ui, mask_text(str(exc)), EXIT_ERROR)
        except ValueError as exc:
            return fail(ui, str(exc), EXIT_ERROR)
        except KeyboardInterrupt:
            return fail(ui, "interrupted: every message the tool had hidden was made visible again", EXIT_INTERRUPTED)


def _now_ms() -> int:
    return int(time.time() * 1000)

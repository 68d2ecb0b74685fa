"""Command line of the privacy tool: arguments, discovery, dispatch to ``erase`` (:mod:`tools.privacy.cmd_erase`),
exit codes; output and signals as tools.dlq's (:mod:`tools.oncall`)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from tools import add_version_option
from tools.dlq.core import mask_text
from tools.dlq.sqs import DlqClient
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
    make_client,
    make_session,
    parse_with_defaults,
)
from tools.oncall.signals import sigterm_as_interrupt
from tools.oncall.ui import Ui, fail
from tools.privacy.aws import (
    ProfileTable,
    Targets,
    discover_from_stack_resources,
    discover_from_stage,
    function_environment,
    resolve_app_ids,
)
from tools.privacy.cmd_erase import Aws, cmd_erase

PLATFORMS = ("ios", "android")

DESCRIPTION = """\
Erase one person's data from the pipeline on request (GDPR Art. 17, CCPA): the device profiles (every app, or the
one --app names) and the device's messages in both dead-letter queues, matched on its device id, advertising id or
Kochava device id (any case). Prints what it removed, personal data masked unless --reveal. Idempotent: a second
run removes nothing and exits 0. What an erase cannot reach (point-in-time backups, Kochava's own copy): see
docs/privacy.md.

Where: --stack NAME (the stack's outputs and resources); --stage S (the project's names, on AWS); --endpoint-url
URL alone (the local stack, `make local`: stage local). The profile keys hold the Kochava app GUID: --app-id GUID
(repeatable), else read from the deployed enricher's environment, else this shell's KOCHAVA_APP_ID_* variables
(on the local stack: what `make local` runs with)."""

EPILOG = """\
examples:
  python -m tools.privacy --stack kochava-prod erase --platform ios --device-id 3B2F8C1E-... --dry-run
  python -m tools.privacy --stack kochava-prod erase --platform ios --device-id 3B2F8C1E-...
  python -m tools.privacy --stack kochava-prod erase --user-id user-1001
  python -m tools.privacy --stack kochava-prod erase --platform android --device-id 9774d56d682e549c \\
      --app com.example.shop
  python -m tools.privacy --endpoint-url http://127.0.0.1:4566 --json erase --platform ios --device-id X

exit codes:
  0    done: everything found was removed, every key read back empty, and nothing was left unlooked at (or
       nothing was found; with --dry-run: nothing changed)
  1    an AWS error, the table / queues / app GUIDs not found, something could not be deleted or came back, or
       a place was not looked at (--no-scan, a DLQ scan cut short): see the summary; run it again
  2    bad arguments
  130  interrupted (Ctrl-C / SIGTERM): messages the tool had hidden were made visible again; run it again

runbook: docs/privacy.md (deletion requests), docs/runbook.md"""

COMMON_DEFAULTS: dict[str, Any] = {**STACK_DEFAULTS, "table": None, "json": False, "wait_time_seconds": 1}


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    where = common.add_argument_group("where the pipeline is (as tools.dlq)")
    add_stack_options(where)
    where.add_argument("--table", metavar="NAME", help="the device-profile table (default: found as above)")
    out = common.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="one JSON document on stdout (for scripts)")
    out.add_argument("--wait-time-seconds", type=int, metavar="S", help=argparse.SUPPRESS)
    return common


def _platform(text: str) -> str:
    value = text.strip().lower()
    if value not in PLATFORMS:
        raise argparse.ArgumentTypeError(f"must be ios or android, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m tools.privacy", description=DESCRIPTION, epilog=EPILOG, formatter_class=fmt, parents=[common]
    )
    add_version_option(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    erase = sub.add_parser(
        "erase",
        parents=[common],
        formatter_class=fmt,
        help="delete a device's profiles and DLQ messages",
        description="Delete a device's (or a user's devices') profiles and DLQ messages. See --help of the tool.",
    )
    who = erase.add_argument_group("whose data")
    who.add_argument("--platform", type=_platform, metavar="ios|android", help="the device's platform")
    who.add_argument(
        "--device-id",
        action="append",
        default=[],
        metavar="ID",
        help="device id as the app sends it (IDFV / Android ID, or the Kochava device id); repeatable",
    )
    who.add_argument(
        "--user-id",
        action="append",
        default=[],
        metavar="ID",
        help="also every device whose profile stores this user id (scans the profile table); repeatable",
    )
    scope = erase.add_argument_group("scope")
    scope.add_argument("--app", metavar="BUNDLE", help="only this app's profiles (bundle id); default: every app")
    scope.add_argument(
        "--app-id",
        action="append",
        default=[],
        metavar="GUID",
        help="the Kochava app GUIDs to erase under (default: read from the deployed enricher); repeatable",
    )
    scan = scope.add_mutually_exclusive_group()
    scan.add_argument(
        "--no-scan",
        dest="scan",
        action="store_false",
        help="do not read the whole profile table (the default does: profiles stored before ids were normalised "
        "under another spelling, GUIDs no longer configured, other ids); the erase then reports what it did not "
        "look at and exits 1",
    )
    scan.add_argument("--scan", dest="scan", action="store_true", help=argparse.SUPPRESS)  # the default now
    erase.add_argument("--dry-run", action="store_true", help="show what would be removed; change nothing")
    erase.add_argument("--reveal", action="store_true", help="print device ids and user ids unmasked")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parse_with_defaults(parser, argv, COMMON_DEFAULTS)
    if not args.device_id and not args.user_id:
        parser.error("erase needs --device-id ID (with --platform) or --user-id ID")
    if args.device_id and args.platform is None:
        parser.error("--device-id needs --platform ios|android")
    if args.app and args.app_id:
        parser.error("give --app BUNDLE or --app-id GUID, not both")
    if any(not d.strip() for d in [*args.device_id, *args.user_id]):
        parser.error("--device-id / --user-id must not be empty")
    return args


# ---------------------------------------------------------------------------------------------------- discovery


def discover(args: argparse.Namespace) -> Aws:
    opts = AwsOptions(region=args.region, endpoint_url=args.endpoint_url, profile=args.profile)
    session = make_session(opts)
    sqs = make_client(session, "sqs", opts)
    if args.stack:
        targets = discover_from_stack_resources(make_client(session, "cloudformation", opts), sqs, args.stack)
    elif args.stage or args.endpoint_url:
        targets = discover_from_stage(sqs, args.stage or LOCAL_STAGE)
    else:
        raise DiscoveryError("where is the pipeline? give --stack NAME, --stage S or --endpoint-url URL")
    if args.table:
        targets = Targets(table=args.table, function=targets.function, pairs=targets.pairs)
    table = ProfileTable(make_client(session, "dynamodb", opts), targets.table)
    table.check()
    lambda_client = make_client(session, "lambda", opts) if targets.function and not args.app_id else None
    app_ids = resolve_app_ids(
        list(args.app_id),
        lambda: function_environment(lambda_client, str(targets.function)) if lambda_client else None,
        targets.function,
        local=bool(args.endpoint_url) and not args.stack and (args.stage or LOCAL_STAGE) == LOCAL_STAGE,
    )
    client = DlqClient(sqs, wait_time_s=args.wait_time_seconds)
    return Aws(targets=targets, table=table, dlq=client, app_ids=app_ids)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    now_ms: int | None = None,
) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    ui = Ui(out=stdout or sys.stdout, err=stderr or sys.stderr, json=args.json, stdin=sys.stdin)
    with sigterm_as_interrupt():
        try:
            aws = discover(args)
            return cmd_erase(aws, args, ui, now_ms if now_ms is not None else int(time.time() * 1000))
        except DiscoveryError as exc:
            return fail(ui, str(exc), EXIT_ERROR)
        except AWS_ERRORS as exc:
            return fail(ui, mask_text(str(exc)), EXIT_ERROR)
        except KeyboardInterrupt:
            return fail(ui, "interrupted before anything was removed", EXIT_INTERRUPTED)

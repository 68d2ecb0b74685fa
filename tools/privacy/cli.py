"""Command line of the privacy tool: arguments, discovery, human and JSON output, exit codes (as tools.dlq's)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from tools.dlq.cli import Ui, _fail, _sigterm  # the same output and signal handling as tools.dlq
from tools.dlq.core import mask_text, mask_value
from tools.dlq.sqs import DlqClient
from tools.oncall import (
    AWS_ERRORS,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
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
from tools.privacy.aws import (
    AppIds,
    ProfileTable,
    Targets,
    discover_from_stack_resources,
    discover_from_stage,
    function_environment,
    resolve_app_ids,
)
from tools.privacy.core import Found
from tools.privacy.ops import DlqReport, ProfileReport, Request, erase_from_dlq, erase_profiles, removed_count

SCAN_LIMIT = 100_000  # messages looked at per DLQ and run (SQS allows 120,000 in flight)
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


@dataclass
class Aws:
    targets: Targets
    table: ProfileTable
    dlq: DlqClient
    app_ids: AppIds


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


# ------------------------------------------------------------------------------------------------------ output


def _shown(value: str, reveal: bool) -> str:
    return value if reveal else mask_value(value)


def _key_shown(found: Found, reveal: bool) -> str:
    parts = found.parts
    if parts is None:
        return _shown(found.key, reveal)
    return f"{parts.app_id}#{parts.platform}#{_shown(parts.device_id, reveal)}"


def _document(args: argparse.Namespace, profiles: ProfileReport, dlqs: list[DlqReport], code: int) -> dict[str, Any]:
    reveal = bool(args.reveal)
    return {
        "command": "erase",
        "dry_run": bool(args.dry_run),
        "revealed": reveal,
        "devices": [{"platform": p, "device_id": _shown(d, reveal)} for p, d in profiles.devices],
        "user_ids": [_shown(u, reveal) for u in args.user_id],
        "profiles": {
            "table": profiles.table,
            "app_ids": profiles.app_ids,
            "app_ids_source": profiles.app_ids_source,
            "keys_tried": profiles.keys_tried,
            "scanned": profiles.scanned,
            "deleted": [{"key": _key_shown(f, reveal), "fields": f.fields} for f in profiles.deleted],
            "not_looked": profiles.not_looked,
            "checked_after_delete": profiles.checked,
            "remaining": [_key_shown(Found(k), reveal) for k in profiles.remaining],
        },
        "dlqs": [
            {
                "dlq": d.dlq,
                "scanned": d.scanned,
                "truncated": d.truncated,
                "deleted": d.deleted,
                "rewritten": d.rewritten,
                "failed": d.failed,
                "interrupted": d.interrupted,
            }
            for d in dlqs
        ],
        "removed": removed_count(profiles, dlqs),
        "exit_code": code,
    }


def _print(ui: Ui, args: argparse.Namespace, profiles: ProfileReport, dlqs: list[DlqReport]) -> None:
    reveal, dry = bool(args.reveal), bool(args.dry_run)
    who = [f"{p} device {_shown(d, reveal)}" for p, d in profiles.devices]
    who += [f"user {_shown(u, reveal)}" for u in args.user_id if not profiles.devices]
    ui.line("erase " + ", ".join(who) + (" (dry run: nothing changed)" if dry else ""))
    verb = "would delete" if dry else "deleted"
    ui.line(f"app GUIDs: {', '.join(profiles.app_ids) or '-'}  (from {profiles.app_ids_source})")
    scanned = f", scanned {profiles.scanned} items" if profiles.scanned is not None else ""
    ui.line(f"{profiles.table}: {verb} {len(profiles.deleted)} profile(s) of {profiles.keys_tried} key(s){scanned}")
    for found in profiles.deleted:
        ui.line(f"  {_key_shown(found, reveal)}  held: {', '.join(found.fields)}")
    if profiles.checked:
        ui.line(f"  read back {profiles.checked} key(s) after deleting: {len(profiles.remaining)} present")
    for key in profiles.remaining:
        ui.line(f"  STILL PRESENT (written back after the delete): {_key_shown(Found(key), reveal)}: run again")
    for place in profiles.not_looked:
        ui.line(f"  NOT LOOKED AT: {place}")
    for d in dlqs:
        ui.line(
            f"{d.dlq}: looked at {d.scanned}, {verb} {len(d.deleted)}, "
            f"{'would rewrite' if dry else 'rewrote'} {len(d.rewritten)}, failed {len(d.failed)}"
            + ("  (stopped at the scan limit: run again)" if d.truncated else "")
        )
        for entry in [*d.deleted, *d.rewritten, *d.failed]:
            kept = f", {entry['events_kept']} other event(s) kept" if entry.get("events_kept") else ""
            error = f"  FAILED: {entry['error']}" if "error" in entry else ""
            ui.line(
                f"  {entry['id']}  {entry['reason']}  {entry['event_name']}  matched {', '.join(entry['matched'])}"
                + kept
                + error
            )
    ui.line(f"{'would remove' if dry else 'removed'} {removed_count(profiles, dlqs)} profile(s) and message(s)")
    if not profiles.complete:
        ui.line("NOT CONFIRMED: the erase did not look everywhere, or a profile came back (see above)")
    ui.line("not reached by an erase: point-in-time backups (35 days), Kochava's copy: see docs/privacy.md")


# ---------------------------------------------------------------------------------------------------- commands


def cmd_erase(aws: Aws, args: argparse.Namespace, ui: Ui, now_ms: int) -> int:
    devices = tuple((args.platform, d.strip()) for d in args.device_id)
    request = Request(
        devices=devices,
        user_ids=tuple(u.strip() for u in args.user_id),
        bundle=args.app,
        scan_table=bool(args.scan) or bool(args.user_id),
        dry_run=bool(args.dry_run),
    )
    profiles = ProfileReport(table=aws.table.name, app_ids_source=aws.app_ids.source)
    dlqs: list[DlqReport] = []
    code = EXIT_OK
    try:
        profiles, wanted = erase_profiles(aws.table, aws.app_ids, request)
        for pair in aws.targets.pairs:
            report = DlqReport(dlq=pair.dlq_name)
            dlqs.append(report)
            erase_from_dlq(aws.dlq, pair, wanted, report, now_ms=now_ms, dry_run=request.dry_run, limit=SCAN_LIMIT)
    except KeyboardInterrupt:
        ui.note("interrupted: every message the tool had hidden was made visible again; run it again")
        code = EXIT_INTERRUPTED
    except AWS_ERRORS as exc:
        ui.note(f"error: {mask_text(str(exc))}")
        code = EXIT_ERROR
    if code == EXIT_OK and (any(d.failed or d.truncated for d in dlqs) or not profiles.complete):
        code = EXIT_ERROR  # a confirmation run must not pass when something was not looked at or came back
    _print(ui, args, profiles, dlqs)
    ui.document(_document(args, profiles, dlqs, code))
    return code


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
    try:
        previous: Any = signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:  # not the main thread
        previous = None
    try:
        aws = discover(args)
        return cmd_erase(aws, args, ui, now_ms if now_ms is not None else int(time.time() * 1000))
    except DiscoveryError as exc:
        return _fail(ui, str(exc), EXIT_ERROR)
    except AWS_ERRORS as exc:
        return _fail(ui, mask_text(str(exc)), EXIT_ERROR)
    except KeyboardInterrupt:
        return _fail(ui, "interrupted before anything was removed", EXIT_INTERRUPTED)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)

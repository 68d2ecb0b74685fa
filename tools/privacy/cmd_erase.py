"""``tools.privacy erase``: delete a device's (or a user's devices') profiles and DLQ messages, and say what was
removed (personal data masked unless ``--reveal``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from tools.dlq.core import mask_text, mask_value
from tools.dlq.sqs import DlqClient
from tools.oncall import AWS_ERRORS, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK
from tools.oncall.ui import Ui
from tools.privacy.aws import AppIds, ProfileTable, Targets
from tools.privacy.core import Found
from tools.privacy.ops import DlqReport, ProfileReport, Request, erase_from_dlq, erase_profiles, removed_count

SCAN_LIMIT = 100_000  # messages looked at per DLQ and run (SQS allows 120,000 in flight)


@dataclass
class Aws:
    targets: Targets
    table: ProfileTable
    dlq: DlqClient
    app_ids: AppIds


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

"""``tools.dlq replay``: messages back to their source queue (deleted from the DLQ only once sent)."""

from __future__ import annotations

import argparse

from tools.dlq.command import Context, message_lines, selection_of
from tools.dlq.core import Selection, mask_text, refusal_why
from tools.dlq.ops import ReplayReport, Throttle, replay_all, replay_messages, wrong_source
from tools.oncall import AWS_ERRORS, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED
from tools.oncall.ui import Ui


def cmd_replay(ctx: Context, args: argparse.Namespace) -> int:
    selection = selection_of(args)
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
            for text in message_lines(r.would_move):
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

"""``tools.dlq purge``: delete selected messages for good, after a confirmation."""

from __future__ import annotations

import argparse

from functions.pipeline.jsontext import escape_surrogates
from tools.dlq.command import Context, message_lines, selection_of
from tools.dlq.core import DlqMessage, Selection, message_summary
from tools.dlq.ops import PurgeReport, purge
from tools.dlq.sqs import QueuePair
from tools.oncall import EXIT_ERROR, EXIT_OK, EXIT_REFUSED
from tools.oncall.ui import Ui, isatty


def cmd_purge(ctx: Context, args: argparse.Namespace) -> int:
    selection = Selection() if args.all and selection_of(args).is_everything else selection_of(args)
    interactive = isatty(ctx.ui.stdin) and isatty(ctx.ui.err)
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
            for text in message_lines(ui_list, indent="  "):
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
    for text in message_lines([message_summary(m, now_ms) for m in chosen], indent="  "):
        print(escape_surrogates(text), file=stream)
    stream.flush()

"""``tools.dlq list``: counts per DLQ by stage, reason, event name and age (read-only)."""

from __future__ import annotations

import argparse

from tools.dlq.command import Context, advice, pair_json, selection_of, table
from tools.dlq.core import format_age, group
from tools.dlq.ops import scan
from tools.oncall import EXIT_OK


def cmd_list(ctx: Context, args: argparse.Namespace) -> int:
    selection = selection_of(args)
    queues = []
    for pair in ctx.pairs:
        approx = ctx.client.approximate_count(pair.dlq_url)
        seen = scan(ctx.client, pair, ctx.scan_limit, keep=lambda m: selection.matches(m, ctx.now_ms))
        messages = seen.messages
        groups = group(messages, ctx.now_ms)
        queues.append(
            {
                **pair_json(pair),
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
                [g.stage, g.reason, g.event_name, g.age, str(g.count), format_age(g.oldest_age_s), advice(g.reason)]
                for g in groups
            ]
            headers = ["stage", "reason", "event name", "age", "count", "oldest", "what to do"]
            for row in table(rows, headers):
                ctx.ui.line("  " + row)
            replayable = sum(g.count for g in groups if g.replayable)
            ctx.ui.line(f"  replayable {replayable}, not replayable {len(messages) - replayable}")
        ctx.ui.line()
    ctx.ui.document({"command": "list", "now_ms": ctx.now_ms, "queues": queues})
    return EXIT_OK

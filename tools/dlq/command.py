"""What every ``tools.dlq`` command gets (:class:`Context`) and the text helpers they share."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tools import robust
from tools.dlq.core import REASON_ADVICE, Selection, format_age
from tools.dlq.sqs import DlqClient, QueuePair
from tools.oncall.ui import Ui


@dataclass
class Context:
    """What a command works on: the DLQ client, the DLQ / source queue pairs, the output, the run's clock."""

    client: DlqClient
    pairs: list[QueuePair]
    ui: Ui
    now_ms: int
    scan_limit: int | None = None


def selection_of(args: argparse.Namespace) -> Selection:
    """The selectors of the command line (``--reason``, ``--event-name``, ``--older-than``, ``--id``, ids)."""
    ids = list(args.ids) + list(getattr(args, "message_ids", []) or [])
    return Selection.of(reasons=args.reason, event_names=args.event_name, ids=ids, older_than_s=args.older_than)


def advice(reason: str) -> str:
    return REASON_ADVICE.get(reason, "unknown reason: read the messages (`show`)")


def iso(ms: object) -> str | None:
    """Epoch ms as stored -> ISO text, never raising (``tools.robust.iso``)."""
    return robust.iso(ms)


def table(rows: list[list[str]], headers: list[str]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers).rstrip(), *(fmt.format(*row).rstrip() for row in rows)]


MAX_LISTED = 100  # message lines printed per DLQ by replay --dry-run / purge; --json always has them all


def message_lines(summaries: Sequence[dict[str, Any]], indent: str = "    ") -> list[str]:
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


def pair_json(pair: QueuePair) -> dict[str, Any]:
    return {"dlq": pair.dlq_name, "dlq_url": pair.dlq_url, "source": pair.source_name, "source_url": pair.source_url}

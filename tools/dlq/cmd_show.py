"""``tools.dlq show``: messages in full, personal data masked unless ``--reveal`` (read-only)."""

from __future__ import annotations

import argparse
from typing import Any

from functions.names import ATTR_ERROR, ATTR_FIELD, ATTR_RESPONSE_BODY, ATTR_STATUS
from tools.dlq.command import Context, advice, iso, selection_of
from tools.dlq.core import DlqMessage, body_for_json, format_age, message_summary, render_body, shown_attributes
from tools.dlq.ops import scan
from tools.dlq.sqs import QueuePair
from tools.oncall import EXIT_ERROR, EXIT_OK
from tools.oncall.ui import Ui


def cmd_show(ctx: Context, args: argparse.Namespace) -> int:
    selection = selection_of(args)
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
        "first_failure": iso(msg.first_failure_ms),
        "sent_at": iso(msg.system.get("SentTimestamp")),
        "attributes": shown_attributes(msg, reveal=reveal),
        "body": body_for_json(msg.body, reveal=reveal),
    }


def _print_message(ui: Ui, i: int, n: int, doc: dict[str, Any], msg: DlqMessage, *, reveal: bool) -> None:
    attrs: dict[str, str] = doc["attributes"]
    ui.line(f"--- {i}/{n}  {doc['dlq']}  id {doc['id']}")
    ui.line(f"reason         {doc['reason']}  ({advice(doc['reason'])})")
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

"""What became of every accepted event, and the short readable report ``make local`` prints.

The accounting is built from observations, not from what the pipeline is supposed to do:

* accepted: every event of every body the local API answered ``202`` for (key: its uuid, else
  ``<request_id>#<index>``);
* dead-lettered: the messages in each DLQ, matched by their ``uuid`` attribute, or by ``request_id`` for a
  message about a whole body (unparseable JSON, or redriven by SQS after the enricher crashed on it);
* delivered: the delivery envelopes the deliverer handled successfully (and did not dead-letter);
* filtered: what is left AND what the pure parser / mapping says is filtered on purpose (``heartbeat``...;
  Segment ``page``, ``group``, ``alias`` calls, shown by their call type); anything else left over is **lost**,
  and makes ``--once`` exit 1.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from functions.names import ATTR_REASON, ATTR_REQUEST_ID, ATTR_UUID
from functions.pipeline import reasons

DELIVERED = "delivered"
FILTERED = "filtered"
LOST = "lost"


@dataclass(frozen=True)
class AcceptedEvent:
    key: str  # the uuid, or "<request_id>#<index>" when the event has none
    uuid: str | None
    route: str
    request_id: str
    predicted: str  # "ok" | "filtered" | "rejected" (the pure mapping's opinion, used only for "filtered")
    event_name: str | None = None


@dataclass(frozen=True)
class DlqMessage:
    queue_key: str  # "ingest" | "delivery"
    queue_name: str
    message_id: str
    body: str
    attributes: dict[str, str]

    @property
    def reason(self) -> str:
        """The ``reason`` attribute; none means SQS redrove it (the consumer crashed ``maxReceiveCount`` times)."""
        return self.attributes.get(ATTR_REASON) or reasons.REDRIVEN

    @property
    def uuid(self) -> str | None:
        uuid = self.attributes.get(ATTR_UUID)
        if uuid:
            return uuid
        if self.queue_key == "delivery":  # a redriven envelope still names its event
            try:
                value = json.loads(self.body).get("uuid")
            except (ValueError, AttributeError):
                return None
            return value if isinstance(value, str) else None
        return None

    @property
    def request_id(self) -> str | None:
        return self.attributes.get(ATTR_REQUEST_ID)


@dataclass(frozen=True)
class Delivered:
    uuid: str
    kind: str
    event_name: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class ApiAnswer:
    name: str  # the sample file, or what was posted
    route: str
    status: int
    document: dict[str, Any]


@dataclass
class Report:
    """Every accepted event's fate, plus what the API refused, the DLQ contents and the sink's view."""

    answers: list[ApiAnswer]
    accepted: list[AcceptedEvent]
    fates: dict[str, str]  # key -> "delivered" | "filtered" | "lost" | "dlq:<queue>:<reason>"
    dlq: dict[str, list[DlqMessage]]  # queue key -> messages
    dlq_names: dict[str, str]
    delivered: dict[str, Delivered]
    sink_requests: int | None = None
    sink_successes: int | None = None
    sink_violations: list[tuple[str, str]] = field(default_factory=list)
    sample_payloads: dict[str, Any] = field(default_factory=dict)  # action -> one payload Kochava received

    @property
    def lost(self) -> list[str]:
        return sorted(key for key, fate in self.fates.items() if fate == LOST)

    @property
    def redriven(self) -> int:
        return sum(1 for messages in self.dlq.values() for m in messages if m.reason == reasons.REDRIVEN)

    @property
    def ok(self) -> bool:
        """Every accepted event delivered, filtered or dead-lettered with a reason (not redriven)."""
        return not self.lost and self.redriven == 0

    def count(self, fate: str) -> int:
        return sum(1 for value in self.fates.values() if value == fate)

    def text(self, *, payloads: bool = True) -> str:
        lines = ["", "=== local pipeline report ==="]
        statuses = Counter(answer.status for answer in self.answers)
        answered = ", ".join(f"{count} x {status}" for status, count in sorted(statuses.items()))
        lines.append(f"posted       {len(self.answers)} requests ({answered})")
        duplicates = len(self.accepted) - len(self.fates)
        again = f" ({duplicates} of them a uuid already accepted)" if duplicates else ""
        lines.append(f"accepted     {len(self.accepted)} events{again}")
        kinds = Counter(d.kind for key, d in self.delivered.items() if self.fates.get(key) == DELIVERED)
        lines.append(f"delivered    {self.count(DELIVERED)}  ({_counts(kinds)})")
        filtered = Counter(str(e.event_name) for e in self.accepted if self.fates.get(e.key) == FILTERED)
        lines.append(f"filtered     {self.count(FILTERED)}  ({_counts(filtered)})")
        refused = [a for a in self.answers if a.status != 202]
        lines.append(f"rejected by the API: {len(refused)}")
        for answer in refused:
            detail = "; ".join(answer.document.get("errors", [])) or answer.document.get("message", "")
            lines.append(f"  {answer.status} {answer.name}: {answer.document.get('message', '')} - {detail[:160]}")
        for key, messages in self.dlq.items():
            by_reason = Counter(m.reason for m in messages)
            lines.append(f"in DLQ {self.dlq_names.get(key, key)}: {len(messages)}  ({_counts(by_reason)})")
            for m in messages[:20]:
                attrs = m.attributes
                what = attrs.get("field") or attrs.get("http_status") or ""
                error = (attrs.get("error") or "")[:110]
                lines.append(f"  {m.reason:<22} {m.uuid or m.request_id or '-':<38} {what} {error}".rstrip())
            if len(messages) > 20:
                lines.append(f"  ... and {len(messages) - 20} more (python -m tools.dlq list)")
        if self.sink_requests is not None:
            lines.append(
                f"Kochava sink: {self.sink_requests} requests, {self.sink_successes} answered success, "
                f"{len(self.sink_violations)} payload problems (each answered 400, as Kochava would refuse it)"
            )
            for path, problem in self.sink_violations[:10]:
                lines.append(f"  {path}: {problem}")
        lost = self.lost
        lines.append(f"lost         {len(lost)}" + (f"  {', '.join(lost[:20])}" if lost else ""))
        if self.redriven:
            lines.append(f"redriven     {self.redriven} (a handler crashed on them maxReceiveCount times: a bug)")
        if payloads and self.sample_payloads:
            lines.append("one delivered payload per action:")
            for action, payload in sorted(self.sample_payloads.items()):
                lines.append(f"  {action}: {json.dumps(payload, sort_keys=True)}")
        lines.append("result: " + ("OK, every accepted event is accounted for" if self.ok else "FAILED"))
        return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {count}" for name, count in sorted(counter.items())) or "-"


def account(
    accepted: list[AcceptedEvent], dlq: dict[str, list[DlqMessage]], delivered: dict[str, Delivered]
) -> dict[str, str]:
    """The fate of each accepted event (see the module docstring for the order of the rules)."""
    by_uuid: dict[tuple[str, str], DlqMessage] = {}
    by_request: dict[str, DlqMessage] = {}
    for key, messages in dlq.items():
        for message in messages:
            if message.uuid:
                by_uuid.setdefault((key, message.uuid), message)
            elif message.request_id:
                by_request.setdefault(message.request_id, message)
    fates: dict[str, str] = {}
    for event in accepted:
        fate = LOST
        for key in dlq:
            hit = by_uuid.get((key, event.uuid)) if event.uuid else None
            if hit is None and key == "ingest":
                hit = by_request.get(event.request_id)
            if hit is not None:
                fate = f"dlq:{key}:{hit.reason}"
                break
        else:
            if event.uuid and event.uuid in delivered:
                fate = DELIVERED
            elif event.predicted == FILTERED:
                fate = FILTERED
        fates[event.key] = fate
    return fates

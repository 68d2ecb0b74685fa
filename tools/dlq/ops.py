"""What the commands do to the queues: scan (read-only), replay, purge. No printing, no argument parsing.

The invariant of every operation: a message leaves a DLQ only by ``DeleteMessage`` *after* SQS accepted its copy
on the source queue (replay) or after the operator confirmed (purge); every other message the tool received is
made visible again when the operation ends, however it ends (:class:`~tools.dlq.sqs.Held`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.dlq.core import DlqMessage, Selection, message_summary, refused, replay_attributes, size_batches
from tools.dlq.sqs import SQS_BATCH, DlqClient, Held, MoveTask, MoveTaskUnavailable, Outgoing, QueuePair

Progress = Callable[[int], None]
MOVE_TASK_POLL_S = 2.0
MOVE_TASK_RUNNING = frozenset({"RUNNING", "CANCELLING"})


@dataclass
class Scan:
    """What a read-only look saw: the messages, and whether it stopped at the scan limit."""

    messages: list[DlqMessage]
    truncated: bool = False


def scan(
    client: DlqClient,
    pair: QueuePair,
    limit: int | None = None,
    *,
    keep: Callable[[DlqMessage], bool] | None = None,
    enough: int | None = None,
) -> Scan:
    """The DLQ's messages (those ``keep`` accepts; stop after ``enough`` of them or ``limit`` seen), leaving them
    all visible again: a read-only look."""
    kept: list[DlqMessage] = []
    with Held(client, pair, limit=limit) as held:
        for batch in held.scan():
            kept.extend(m for m in batch if keep is None or keep(m))
            if enough is not None and len(kept) >= enough:
                return Scan(kept[:enough])
        return Scan(kept, truncated=held.limit_reached)


@dataclass
class ReplayReport:
    """What a replay did to one DLQ. Lists hold :func:`~tools.dlq.core.message_summary` dicts."""

    dlq: str
    source: str | None
    mode: str = "per_message"  # "per_message" | "move_task"
    dry_run: bool = False
    notes: list[str] = field(default_factory=list)
    moved: list[dict[str, Any]] = field(default_factory=list)
    moved_count: int = 0  # == len(moved), or the move task's count (it does not name the messages)
    would_move: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)  # not sent: still in the DLQ
    sent_not_deleted: list[dict[str, Any]] = field(default_factory=list)  # in both queues: a harmless duplicate
    not_selected: int = 0
    arrived_during_run: int = 0  # reached the DLQ after the replay started: left alone (see replay_messages)
    move_task: dict[str, Any] | None = None
    interrupted: bool = False
    wrong_queue: str | None = None  # why the source queue was refused (nothing was looked at or moved)

    def to_json(self) -> dict[str, Any]:
        return {
            "dlq": self.dlq,
            "source": self.source,
            "wrong_queue": self.wrong_queue,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "notes": self.notes,
            "moved": self.moved_count,
            "moved_messages": self.moved,
            "would_move": self.would_move,
            "refused": self.refused,
            "failed": self.failed,
            "sent_not_deleted": self.sent_not_deleted,
            "not_selected": self.not_selected,
            "arrived_during_run": self.arrived_during_run,
            "move_task": self.move_task,
            "interrupted": self.interrupted,
        }


def wrong_source(client: DlqClient, pair: QueuePair) -> str | None:
    """Why replaying ``pair.dlq`` into ``pair.source`` must be refused, or None when the source queue's
    RedrivePolicy dead-letters into that very DLQ (so its consumer is the one that failed these messages).

    Replaying into another queue hands the messages to the wrong Lambda: delivery envelopes sent to the ingest queue
    are dead-lettered by the enricher as invalid events, which are never replayable and get purged.
    """
    if pair.source_url is None:
        return None
    target = client.redrive_target_arn(pair.source_url)
    dlq_arn = client.queue_arn(pair.dlq_url)
    if target == dlq_arn:
        return None
    source = pair.source_name
    why = f"it dead-letters into {target.rsplit(':', 1)[-1]}" if target else "it has no redrive policy"
    return (
        f"refusing to replay {pair.dlq_name} into {source}: {source} is not the source of {pair.dlq_name} ({why}), "
        f"so its consumer is not the one that failed these messages. Replay into the queue whose redrive policy "
        f"targets {pair.dlq_name} (omit --source-url: the tool finds it), or pass --force if you are sure"
    )


class Throttle:
    """At most ``rate`` messages per second on average (None: as fast as SQS goes)."""

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = rate
        self.clock = clock
        self.sleep = sleep
        self.start: float | None = None
        self.sent = 0

    @property
    def chunk(self) -> int:
        return SQS_BATCH if not self.rate else max(1, min(SQS_BATCH, int(self.rate)))

    def wait(self, n: int) -> None:
        if self.rate:
            if self.start is None:
                self.start = self.clock()
            delay = self.start + self.sent / self.rate - self.clock()
            if delay > 0:
                self.sleep(delay)
        self.sent += n


def replay_messages(
    client: DlqClient,
    pair: QueuePair,
    selection: Selection,
    report: ReplayReport,
    *,
    now_ms: int,
    force: bool = False,
    dry_run: bool = False,
    throttle: Throttle | None = None,
    progress: Progress | None = None,
    limit: int | None = None,
    since_ms: int | None = None,
) -> ReplayReport:
    """Receive -> send to the source queue -> delete, for the selected messages; the rest are made visible again.

    Only messages already in the DLQ when the replay started (SQS ``SentTimestamp`` before ``since_ms``, default:
    now) are replayed. A replayed message whose cause is not fixed comes back within seconds, as a new message:
    replaying it again in the same run would loop, hammering the consumer (and Kochava). It is left in the DLQ and
    counted in ``arrived_during_run``.

    ``report`` is filled as it goes, so after an exception (Ctrl-C, an AWS error) it still tells what moved and
    which messages were sent but not deleted (they are in both queues: a duplicate the deliverer absorbs).
    """
    report.dry_run = dry_run
    if pair.source_url is None and not dry_run:
        raise ValueError(f"{pair.dlq_name}: source queue unknown (pass --source-url)")
    throttle = throttle or Throttle(None)
    since = since_ms if since_ms is not None else int(time.time() * 1000)
    with Held(client, pair, limit=limit) as held:
        for batch in held.scan():
            chosen: list[DlqMessage] = []
            for msg in batch:
                if msg.arrived_since(since):
                    report.arrived_during_run += 1
                elif not selection.matches(msg, now_ms):
                    report.not_selected += 1
                elif refused(msg, force=force):
                    report.refused.append(message_summary(msg, now_ms))
                else:
                    chosen.append(msg)
            if dry_run:
                report.would_move.extend(message_summary(m, now_ms) for m in chosen)
                continue
            for chunk in size_batches(chosen, throttle.chunk):
                _move_chunk(client, pair, held, chunk, report, now_ms, throttle)
                if progress:
                    progress(report.moved_count)
        if report.arrived_during_run and not dry_run:
            report.notes.append(
                f"{report.arrived_during_run} message(s) reached the DLQ while replaying and were left there: if they "
                "are replayed ones failing again, the cause is not fixed (look with `list` / `show`)"
            )
        if held.limit_reached:
            report.notes.append(f"stopped after looking at {limit} messages (--scan-limit): run it again for the rest")
    return report


def _move_chunk(
    client: DlqClient,
    pair: QueuePair,
    held: Held,
    chunk: Sequence[DlqMessage],
    report: ReplayReport,
    now_ms: int,
    throttle: Throttle,
) -> None:
    assert pair.source_url is not None
    throttle.wait(len(chunk))
    outgoing = [Outgoing(source=m, body=m.body, attributes=replay_attributes(m)) for m in chunk]
    sent, failed = client.send_batch(pair.source_url, outgoing)
    for out, why in failed:
        report.failed.append({**message_summary(out.source, now_ms), "error": why})
    # From here until the delete succeeds the message is in both queues: say so if we get no further.
    pending = {out.source.message_id: message_summary(out.source, now_ms) for out in sent}
    report.sent_not_deleted.extend(pending.values())
    not_deleted = client.delete_batch(pair.dlq_url, [out.source for out in sent])
    kept = {m.message_id for m in not_deleted}
    deleted = [out.source for out in sent if out.source.message_id not in kept]
    held.forget(deleted)
    report.sent_not_deleted = [s for s in report.sent_not_deleted if s["id"] not in pending or s["id"] in kept]
    report.moved.extend(pending[m.message_id] for m in deleted)
    report.moved_count += len(deleted)


def non_replayable_count(client: DlqClient, pair: QueuePair, limit: int | None = None) -> int:
    """How many messages of the DLQ have a non-replayable reason (read-only scan)."""
    return len(scan(client, pair, limit, keep=lambda msg: not msg.replayable).messages)


def replay_all(
    client: DlqClient,
    pair: QueuePair,
    report: ReplayReport,
    *,
    now_ms: int,
    force: bool = False,
    rate: int | None = None,
    use_move_task: bool = True,
    wait: bool = True,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    limit: int | None = None,
) -> ReplayReport:
    """Replay a whole DLQ: with SQS's message move task when it is available and the DLQ holds nothing that must
    be refused; otherwise message by message (refusing what is not replayable unless ``force``)."""
    if pair.source_url is None:
        raise ValueError(f"{pair.dlq_name}: source queue unknown (pass --source-url)")
    since = int(time.time() * 1000)

    def one_by_one() -> ReplayReport:
        return replay_messages(
            client,
            pair,
            Selection(),
            report,
            now_ms=now_ms,
            force=force,
            throttle=Throttle(rate),
            progress=progress,
            limit=limit,
            since_ms=since,
        )

    if not use_move_task:
        return one_by_one()
    if not force:
        invalid = non_replayable_count(client, pair, limit)
        if invalid:
            report.notes.append(
                f"{invalid} message(s) have a non-replayable reason: moving the others one by one instead of with "
                "a message move task (which would move everything)"
            )
            return one_by_one()
    dlq_arn = client.queue_arn(pair.dlq_url)
    try:
        handle = client.start_move_task(dlq_arn, client.queue_arn(pair.source_url), rate)
    except MoveTaskUnavailable as exc:
        report.notes.append(
            f"StartMessageMoveTask is not available here ({exc}); fell back to receive -> send -> delete"
        )
        return one_by_one()
    report.mode = "move_task"
    report.move_task = {"handle": handle, "status": "RUNNING"}
    if not wait:
        report.notes.append("move task started; not waiting for it (--no-wait)")
        return report
    task: MoveTask | None = None
    while True:
        task = client.move_task(dlq_arn)
        if task is None or task.status not in MOVE_TASK_RUNNING:
            break
        report.moved_count = task.moved
        if progress:
            progress(task.moved)
        sleep(MOVE_TASK_POLL_S)
    if task is not None:
        report.moved_count = task.moved
        report.move_task = {"handle": task.handle or handle, "status": task.status, "failure": task.failure}
        if task.status != "COMPLETED":
            report.failed.append({"move_task": task.handle or handle, "status": task.status, "error": task.failure})
    return report


@dataclass
class PurgeReport:
    dlq: str
    selected: list[dict[str, Any]] = field(default_factory=list)
    deleted: list[dict[str, Any]] = field(default_factory=list)
    not_deleted: list[dict[str, Any]] = field(default_factory=list)
    confirmed: bool = False
    dry_run: bool = False
    truncated: bool = False  # stopped at the scan limit: run again for the rest

    def to_json(self) -> dict[str, Any]:
        return {
            "dlq": self.dlq,
            "truncated": self.truncated,
            "selected": self.selected,
            "deleted": len(self.deleted),
            "deleted_messages": self.deleted,
            "not_deleted": self.not_deleted,
            "confirmed": self.confirmed,
            "dry_run": self.dry_run,
        }


Confirm = Callable[[QueuePair, list[DlqMessage]], bool]


def purge(
    client: DlqClient,
    pair: QueuePair,
    selection: Selection,
    *,
    now_ms: int,
    confirm: Confirm,
    dry_run: bool = False,
    limit: int | None = None,
) -> PurgeReport:
    """Delete the selected messages of one DLQ, after ``confirm`` (which sees them) said yes."""
    report = PurgeReport(dlq=pair.dlq_name, dry_run=dry_run)
    with Held(client, pair, limit=limit) as held:
        chosen = [m for batch in held.scan() for m in batch if selection.matches(m, now_ms)]
        report.selected = [message_summary(m, now_ms) for m in chosen]
        report.truncated = held.limit_reached
        if dry_run or not chosen:
            return report
        report.confirmed = confirm(pair, chosen)
        if not report.confirmed:
            return report
        for start in range(0, len(chosen), SQS_BATCH):
            chunk = [held.held_message(m.message_id) or m for m in chosen[start : start + SQS_BATCH]]
            kept = {m.message_id for m in client.delete_batch(pair.dlq_url, chunk)}
            held.forget(m for m in chunk if m.message_id not in kept)
            for m in chunk:
                (report.not_deleted if m.message_id in kept else report.deleted).append(message_summary(m, now_ms))
    return report

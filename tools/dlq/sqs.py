"""The SQS (and CloudFormation) side of the DLQ tool: finding the queues and a small client over boto3.

Every AWS call the tool makes goes through :class:`DlqClient` (messages) or the ``discover_*`` functions
(queue URLs), so tests can run them against moto and inject failures by patching one method.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from botocore.exceptions import ClientError

from functions.names import QUEUES
from infra.resources import (
    OUTPUT_DELIVERY_DLQ_URL,
    OUTPUT_DELIVERY_QUEUE_URL,
    OUTPUT_INGEST_DLQ_URL,
    OUTPUT_INGEST_QUEUE_URL,
    PROJECT,
    ResourceNames,
)
from tools.dlq.core import STAGE_BY_QUEUE_KEY, DlqMessage
from tools.oncall import AwsOptions, DiscoveryError, make_client

SQS_BATCH = 10  # entries per SendMessageBatch / DeleteMessageBatch / ChangeMessageVisibilityBatch (AWS limit)

# Stack outputs: (queue key, source queue output, DLQ output).
STACK_OUTPUTS = (
    ("ingest", OUTPUT_INGEST_QUEUE_URL, OUTPUT_INGEST_DLQ_URL),
    ("delivery", OUTPUT_DELIVERY_QUEUE_URL, OUTPUT_DELIVERY_DLQ_URL),
)


class MoveTaskUnavailable(Exception):
    """SQS StartMessageMoveTask is not available here (e.g. moto): replay message by message instead."""


@dataclass(frozen=True)
class QueuePair:
    """A DLQ and the queue its messages came from (None when unknown: replay is then impossible)."""

    dlq_url: str
    source_url: str | None
    key: str | None = None  # "ingest" | "delivery" when known

    @property
    def dlq_name(self) -> str:
        return queue_name(self.dlq_url)

    @property
    def source_name(self) -> str | None:
        return queue_name(self.source_url) if self.source_url else None

    @property
    def default_stage(self) -> str | None:
        return STAGE_BY_QUEUE_KEY.get(self.key or "")


def queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def queue_key_of(name: str) -> str | None:
    """``kochava-prod-ingest-dlq`` -> ``ingest`` (by the QueueSpec keys of infra/resources.py)."""
    for spec in QUEUES:
        if name.endswith(f"-{spec.key}-dlq") or name.endswith(f"-{spec.key}"):
            return spec.key
    return None


# --------------------------------------------------------------------------------------------------- discovery


def discover_queues(
    session: Any,
    opts: AwsOptions,
    *,
    stack: str | None,
    stage: str | None,
    queue_url: str | None = None,
    source_url: str | None = None,
) -> tuple[Any, list[QueuePair]]:
    """(SQS client, the DLQs with their source queues): from the stack's outputs, one DLQ by URL, or the project's
    names for ``stage``."""
    sqs = make_client(session, "sqs", opts)
    if stack:
        return sqs, discover_from_stack(make_client(session, "cloudformation", opts), stack)
    if queue_url:
        return sqs, discover_from_queue_url(sqs, queue_url, source_url)
    if stage:
        return sqs, discover_from_names(sqs, stage)
    raise DiscoveryError("where are the queues? give --stack NAME, --queue-url URL, --stage S or --endpoint-url")


def discover_from_stack(cloudformation: Any, stack: str) -> list[QueuePair]:
    """The DLQs and source queues named by the stack's outputs (``OUTPUT_*`` in infra/resources.py)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        raise DiscoveryError(f"stack {stack!r}: {exc}") from exc
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (stacks[0].get("Outputs") or [])} if stacks else {}
    pairs = [
        QueuePair(dlq_url=outputs[dlq_key], source_url=outputs.get(source_key), key=key)
        for key, source_key, dlq_key in STACK_OUTPUTS
        if dlq_key in outputs
    ]
    if not pairs:
        wanted = ", ".join(k for _, _, k in STACK_OUTPUTS)
        raise DiscoveryError(f"stack {stack!r} has none of the outputs {wanted} (is it this project's stack?)")
    return pairs


def discover_from_names(sqs: Any, stage: str) -> list[QueuePair]:
    """The queues named by ``ResourceNames(stage)``; when none exists, queues found by listing the project prefix
    and reading each source queue's RedrivePolicy."""
    names = ResourceNames(stage)
    pairs: list[QueuePair] = []
    for spec in QUEUES:
        dlq_url = _queue_url(sqs, names.dlq(spec))
        if dlq_url is not None:
            pairs.append(QueuePair(dlq_url=dlq_url, source_url=_queue_url(sqs, names.queue(spec)), key=spec.key))
    if pairs:
        return pairs
    pairs = discover_by_redrive(sqs, prefix=f"{names.prefix}-")
    if not pairs:
        raise DiscoveryError(
            f"no DLQ named {', '.join(names.dlq(s) for s in QUEUES)} and no queue starting with {names.prefix}- "
            "with a redrive policy (wrong --stage or --endpoint-url? see --stack / --queue-url)"
        )
    return pairs


def discover_by_redrive(sqs: Any, prefix: str = f"{PROJECT}-") -> list[QueuePair]:
    """Every queue starting with ``prefix`` that has a RedrivePolicy, paired with its dead-letter target."""
    urls = list(_list_queues(sqs, prefix))
    by_arn = {_attribute(sqs, url, "QueueArn"): url for url in urls}
    pairs = []
    for url in urls:
        policy = _attribute(sqs, url, "RedrivePolicy")
        if not policy:
            continue
        target = json.loads(policy).get("deadLetterTargetArn")
        dlq_url = by_arn.get(target) or _queue_url(sqs, str(target).rsplit(":", 1)[-1])
        if dlq_url:
            pairs.append(QueuePair(dlq_url=dlq_url, source_url=url, key=queue_key_of(queue_name(dlq_url))))
    return sorted(pairs, key=lambda p: p.dlq_name)


def discover_from_queue_url(sqs: Any, dlq_url: str, source_url: str | None = None) -> list[QueuePair]:
    """One DLQ given by URL; its source from ``source_url`` or ListDeadLetterSourceQueues (when exactly one)."""
    key = queue_key_of(queue_name(dlq_url))
    target = _redrive_target(sqs, dlq_url)
    if target:
        raise DiscoveryError(
            f"{queue_name(dlq_url)} is a source queue (it dead-letters into {target}): pass the DLQ's URL instead"
        )
    if source_url is None:
        try:
            sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls") or []
        except ClientError as exc:
            raise DiscoveryError(f"{dlq_url}: {exc}") from exc
        source_url = sources[0] if len(sources) == 1 else None
    return [QueuePair(dlq_url=dlq_url, source_url=source_url, key=key)]


def _redrive_target(sqs: Any, url: str) -> str | None:
    """The name of the DLQ ``url`` dead-letters into, None when it has no redrive policy."""
    try:
        policy = _attribute(sqs, url, "RedrivePolicy")
    except ClientError as exc:
        raise DiscoveryError(f"{url}: {exc}") from exc
    if not policy:
        return None
    return str(json.loads(policy).get("deadLetterTargetArn", "?")).rsplit(":", 1)[-1]


def _queue_url(sqs: Any, name: str) -> str | None:
    try:
        return str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    except ClientError as exc:
        if "NonExistentQueue" in str(exc) or "QueueDoesNotExist" in str(exc):
            return None
        raise


def _list_queues(sqs: Any, prefix: str) -> Iterator[str]:
    kwargs: dict[str, Any] = {"QueueNamePrefix": prefix, "MaxResults": 1000}
    while True:
        page = sqs.list_queues(**kwargs)
        yield from page.get("QueueUrls") or []
        token = page.get("NextToken")
        if not token:
            return
        kwargs["NextToken"] = token


def _attribute(sqs: Any, url: str, name: str) -> str | None:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[name]).get("Attributes") or {}
    value = attrs.get(name)
    return str(value) if value is not None else None


# ------------------------------------------------------------------------------------------------------ client


@dataclass(frozen=True)
class Outgoing:
    """A message to send back to a source queue (its DLQ message, for bookkeeping)."""

    source: DlqMessage
    body: str
    attributes: dict[str, dict[str, str]]


@dataclass
class MoveTask:
    """The state of an SQS message move task, as ListMessageMoveTasks reports it."""

    handle: str | None
    status: str
    moved: int = 0
    to_move: int | None = None
    failure: str | None = None


class DlqClient:
    """The SQS calls of the tool. Receives keep messages invisible for ``visibility_timeout_s``; callers give
    them back with :meth:`restore_visibility` (see :class:`Held`)."""

    def __init__(self, sqs: Any, *, visibility_timeout_s: int = 300, wait_time_s: int = 1) -> None:
        self.sqs = sqs
        self.visibility_timeout_s = visibility_timeout_s
        self.wait_time_s = wait_time_s

    def approximate_count(self, url: str) -> int:
        return int(_attribute(self.sqs, url, "ApproximateNumberOfMessages") or 0)

    def queue_arn(self, url: str) -> str:
        arn = _attribute(self.sqs, url, "QueueArn")
        if not arn:
            raise DiscoveryError(f"{url}: no QueueArn")
        return arn

    def redrive_target_arn(self, url: str) -> str | None:
        """The ``deadLetterTargetArn`` of the queue's RedrivePolicy (None: no redrive policy)."""
        policy = _attribute(self.sqs, url, "RedrivePolicy")
        if not policy:
            return None
        target = json.loads(policy).get("deadLetterTargetArn")
        return str(target) if target else None

    def receive(self, url: str, default_stage: str | None = None) -> list[DlqMessage]:
        """Up to 10 messages, with every message and system attribute, hidden for ``visibility_timeout_s``."""
        answer = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=SQS_BATCH,
            VisibilityTimeout=self.visibility_timeout_s,
            WaitTimeSeconds=self.wait_time_s,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        return [DlqMessage.from_sqs(raw, default_stage) for raw in answer.get("Messages") or []]

    def restore_visibility(self, url: str, handles: Sequence[str]) -> int:
        """Make messages visible again at once (ChangeMessageVisibility 0); returns how many failed."""
        failed = 0
        for chunk in _chunks(handles, SQS_BATCH):
            entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(chunk)]
            answer = self.sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
            failed += len(answer.get("Failed") or [])
        return failed

    def send_batch(self, url: str, messages: Sequence[Outgoing]) -> tuple[list[Outgoing], list[tuple[Outgoing, str]]]:
        """SendMessageBatch (at most 10); returns (sent, [(not sent, why)])."""
        entries = []
        for i, out in enumerate(messages):
            entry: dict[str, Any] = {"Id": f"m{i}", "MessageBody": out.body}
            if out.attributes:
                entry["MessageAttributes"] = out.attributes
            entries.append(entry)
        answer = self.sqs.send_message_batch(QueueUrl=url, Entries=entries)
        ok_ids = {e["Id"] for e in answer.get("Successful") or []}
        why = {f["Id"]: f"{f.get('Code', '?')}: {f.get('Message', '')}" for f in answer.get("Failed") or []}
        sent = [m for i, m in enumerate(messages) if f"m{i}" in ok_ids]
        failed = [(m, why.get(f"m{i}", "no answer")) for i, m in enumerate(messages) if f"m{i}" not in ok_ids]
        return sent, failed

    def delete_batch(self, url: str, messages: Sequence[DlqMessage]) -> list[DlqMessage]:
        """DeleteMessageBatch (at most 10); returns the messages that were NOT deleted."""
        if not messages:
            return []
        entries = [{"Id": f"m{i}", "ReceiptHandle": m.receipt_handle} for i, m in enumerate(messages)]
        answer = self.sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        failed_ids = {f["Id"] for f in answer.get("Failed") or []}
        return [m for i, m in enumerate(messages) if f"m{i}" in failed_ids]

    def start_move_task(self, source_arn: str, destination_arn: str, rate: int | None) -> str:
        """StartMessageMoveTask; raises :class:`MoveTaskUnavailable` when the endpoint does not implement it."""
        kwargs: dict[str, Any] = {"SourceArn": source_arn, "DestinationArn": destination_arn}
        if rate:
            kwargs["MaxNumberOfMessagesPerSecond"] = rate
        try:
            return str(self.sqs.start_message_move_task(**kwargs)["TaskHandle"])
        except NotImplementedError as exc:  # moto in-process
            raise MoveTaskUnavailable(str(exc) or "not implemented") from exc
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if status >= 500 or code in {"InvalidAction", "UnknownOperation", "NotImplemented", "InternalFailure"}:
                raise MoveTaskUnavailable(f"{code or status}: {exc}") from exc
            raise

    def move_task(self, source_arn: str) -> MoveTask | None:
        """The most recent move task of ``source_arn``."""
        results = self.sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=1).get("Results") or []
        if not results:
            return None
        r = results[0]
        return MoveTask(
            handle=r.get("TaskHandle"),
            status=str(r.get("Status", "?")),
            moved=int(r.get("ApproximateNumberOfMessagesMoved") or 0),
            to_move=int(r["ApproximateNumberOfMessagesToMove"]) if "ApproximateNumberOfMessagesToMove" in r else None,
            failure=r.get("FailureReason"),
        )


def _chunks(items: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


@dataclass
class Held:
    """The messages received from one DLQ and still hidden; leaving the ``with`` block (normally, on an error or
    on Ctrl-C) makes every one that was not deleted visible again, so nothing stays hidden by the tool."""

    client: DlqClient
    pair: QueuePair
    limit: int | None = None  # stop scanning after this many distinct messages
    _held: dict[str, DlqMessage] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    restore_failures: int = 0

    def __enter__(self) -> Held:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def release(self) -> None:
        handles = [m.receipt_handle for m in self._held.values()]
        self._held.clear()
        if handles:
            self.restore_failures += self.client.restore_visibility(self.pair.dlq_url, handles)

    def scan(self) -> Iterator[list[DlqMessage]]:
        """Receive until the DLQ has nothing new (or ``limit``); yields each batch of not-yet-seen messages.
        Every received message stays held until :meth:`forget` (deleted) or the end of the ``with`` block."""
        quiet = 0
        while self.limit is None or len(self._seen) < self.limit:
            batch = self.client.receive(self.pair.dlq_url, self.pair.default_stage)
            fresh = []
            for msg in batch:
                self._held[msg.message_id] = msg  # the newest receipt handle is the one that works
                if msg.message_id not in self._seen:
                    self._seen.add(msg.message_id)
                    fresh.append(msg)
            if fresh:
                quiet = 0
                if self.limit is not None:
                    fresh = fresh[: max(0, self.limit - (len(self._seen) - len(fresh)))]
                yield fresh
            else:
                quiet += 1  # empty, or only messages whose visibility ran out and came back: done
                if quiet >= 2 or not batch:
                    return

    @property
    def limit_reached(self) -> bool:
        return self.limit is not None and len(self._seen) >= self.limit

    def forget(self, messages: Iterable[DlqMessage]) -> None:
        """These were deleted: nothing to restore."""
        for msg in messages:
            self._held.pop(msg.message_id, None)

    def held_message(self, message_id: str) -> DlqMessage | None:
        """The held copy of a message (with its newest receipt handle)."""
        return self._held.get(message_id)

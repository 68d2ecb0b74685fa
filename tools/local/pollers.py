"""The SQS event source of Lambda, emulated: one thread per queue invoking the real handler in-process.

Per queue spec (``infra/resources.py``) a :class:`QueuePoller`:

* gathers a batch: up to ``batch_size`` messages, waiting at most ``batching_window_s`` after the first one;
* builds the Lambda SQS event (``Records`` with ``messageId``, ``receiptHandle``, ``body``, ``attributes``
  including ``ApproximateReceiveCount``, ``messageAttributes`` as ``{"stringValue", "dataType"}``,
  ``eventSource``, ``eventSourceARN``, ``awsRegion``) and a :class:`LambdaContext` whose deadline is the
  consumer's timeout;
* calls the handler and applies its partial batch response (``ReportBatchItemFailures``): the records not listed
  in ``batchItemFailures`` are deleted; the listed ones stay and reappear after the visibility timeout, so SQS
  (moto) redrives them to the DLQ at ``maxReceiveCount``. As on AWS, the whole batch counts as failed when the
  handler raises or names an item that is not in the batch. An invocation that runs longer than the consumer's
  timeout is logged and counted; it fails the whole batch, as Lambda's kill would, only with ``enforce_timeout``
  (moto in one Python process is far slower than SQS and DynamoDB, so a local overrun says little about AWS);
* keeps the batch invisible while the handler runs (the local visibility timeout is scaled down, see
  ``tools.local.aws.TIME_SCALE``, so a long invocation must not let its messages reappear meanwhile).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from functions.names import QueueSpec

log = logging.getLogger("tools.local.pollers")

Handler = Callable[[dict[str, Any], Any], Any]
RECEIVE_WAIT_S = 1  # long-poll wait per receive: short, so stop() is quick


class LambdaContext:
    """What the Lambda runtime passes as ``context``, with a real deadline."""

    def __init__(self, function_name: str, timeout_s: float, region: str, account_id: str = "123456789012") -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def lambda_attribute(value: dict[str, Any]) -> dict[str, Any]:
    """An SQS API message attribute (``{"DataType", "StringValue"}``) in the Lambda event's shape."""
    out: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        out["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return out


def lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS ``ReceiveMessage`` message as a record of a Lambda SQS event."""
    attributes = message.get("Attributes", {})
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", "AIDALOCAL"),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": {
            name: lambda_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_ids(response: Any, records: list[dict[str, Any]]) -> set[str] | None:
    """The message ids the handler reported as failed; ``None`` means the whole batch failed (as Lambda decides)."""
    if response is None:
        return set()
    if not isinstance(response, dict):
        return None
    failures = response.get("batchItemFailures") or []
    if not isinstance(failures, list):
        return None
    known = {record["messageId"] for record in records}
    ids = set()
    for item in failures:
        item_id = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not item_id or item_id not in known:
            return None
        ids.add(item_id)
    return ids


@dataclass
class PollerStats:
    invocations: int = 0
    records: int = 0
    succeeded: int = 0
    failed: int = 0
    crashed_invocations: int = 0
    handler_s: float = 0.0  # total time spent in the handler
    timed_out_invocations: int = 0  # ran longer than the consumer timeout (failed only with enforce_timeout)


@dataclass
class BatchResult:
    """One invocation: what went in, which records failed (the rest were deleted)."""

    queue_key: str
    records: list[dict[str, Any]]
    failed: set[str]
    error: str | None = None
    succeeded: list[dict[str, Any]] = field(default_factory=list)


class QueuePoller:
    """Polls one queue and invokes ``handler`` like Lambda's SQS event source; see the module docstring."""

    def __init__(
        self,
        spec: QueueSpec,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        function_name: str,
        handler: Handler,
        *,
        region: str,
        visibility_timeout_s: int,
        on_batch: Callable[[BatchResult], None] | None = None,
        concurrency: int = 1,
        enforce_timeout: bool = False,
    ) -> None:
        self.spec = spec
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.function_name = function_name
        self.handler = handler
        self.region = region
        self.visibility_timeout_s = visibility_timeout_s
        self.on_batch = on_batch
        self.enforce_timeout = enforce_timeout
        self.stats = PollerStats()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._busy = 0  # threads between their first receive and the end of the deletes
        self._threads = [
            threading.Thread(target=self._run, name=f"poller-{spec.key}-{i}", daemon=True) for i in range(concurrency)
        ]

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._busy > 0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _receive(self, count: int, wait_s: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _gather(self) -> list[dict[str, Any]]:
        """Up to ``batch_size`` messages, waiting at most the batching window after the first."""
        messages = self._receive(self.spec.batch_size, RECEIVE_WAIT_S)
        if not messages:
            return []
        with self._lock:
            self._busy += 1
        window_end = time.monotonic() + self.spec.batching_window_s
        while len(messages) < self.spec.batch_size and time.monotonic() < window_end and not self._stop.is_set():
            try:
                more = self._receive(self.spec.batch_size - len(messages), 0)
            except Exception as exc:  # invoke with what we have; the busy count must be released by _run
                log.warning("%s: receive failed while batching: %s", self.spec.key, exc)
                break
            if more:
                messages.extend(more)
            else:
                time.sleep(0.05)
        return messages

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                messages = self._gather()
            except Exception as exc:  # the endpoint went away (stop) or hiccuped: try again
                if not self._stop.is_set():
                    log.warning("%s: receive failed: %s", self.spec.key, exc)
                    time.sleep(0.5)
                continue
            if not messages:
                continue
            try:
                if not self._stop.is_set():  # stopping: leave them to reappear, as a disabled event source does
                    self._invoke(messages)
            except Exception:
                log.exception("%s: poller error", self.spec.key)
            finally:
                with self._lock:
                    self._busy -= 1

    def _keep_invisible(self, messages: list[dict[str, Any]], done: threading.Event) -> None:
        """While the handler runs, push the batch's visibility out before it expires (the local time scale)."""
        interval = max(0.5, self.visibility_timeout_s / 2)
        while not done.wait(interval):
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self.visibility_timeout_s}
                for i, m in enumerate(messages)
            ]
            for start in range(0, len(entries), 10):
                try:
                    self.sqs.change_message_visibility_batch(
                        QueueUrl=self.queue_url, Entries=entries[start : start + 10]
                    )
                except Exception as exc:
                    log.warning("%s: could not extend visibility: %s", self.spec.key, exc)

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        records = [lambda_record(m, self.queue_arn, self.region) for m in messages]
        event = {"Records": records}
        context = LambdaContext(self.function_name, self.spec.consumer_timeout_s, self.region)
        done = threading.Event()
        keeper = threading.Thread(target=self._keep_invisible, args=(messages, done), daemon=True)
        keeper.start()
        started = time.monotonic()
        error: str | None = None
        try:
            response = self.handler(event, context)
            failed = failed_ids(response, records)
            if failed is None:
                error = f"invalid batch response {response!r:.200}"
        except Exception as exc:
            log.exception("%s: %s raised; the whole batch will be retried", self.spec.key, self.function_name)
            error = f"{type(exc).__name__}: {exc}"
            failed = None
        finally:
            done.set()
            keeper.join()
        elapsed = time.monotonic() - started
        if elapsed > self.spec.consumer_timeout_s:
            with self._lock:
                self.stats.timed_out_invocations += 1
            overrun = f"ran {elapsed:.1f} s, longer than its timeout ({self.spec.consumer_timeout_s} s)"
            if self.enforce_timeout and error is None:
                error = overrun
                failed = None
                log.error("%s: %s %s; the whole batch will be retried", self.spec.key, self.function_name, overrun)
            else:
                log.warning("%s: %s %s (not enforced locally)", self.spec.key, self.function_name, overrun)
        if failed is None:
            failed = {record["messageId"] for record in records}
            if error is None or "longer than its timeout" not in error:
                with self._lock:
                    self.stats.crashed_invocations += 1
        succeeded = [record for record in records if record["messageId"] not in failed]
        self._delete(succeeded)
        with self._lock:
            self.stats.invocations += 1
            self.stats.handler_s += elapsed
            self.stats.records += len(records)
            self.stats.succeeded += len(succeeded)
            self.stats.failed += len(failed)
        if self.on_batch is not None:
            self.on_batch(BatchResult(self.spec.key, records, failed, error, succeeded))

    def _delete(self, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), 10):
            chunk = records[start : start + 10]
            entries = [{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)]
            response = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for failure in response.get("Failed", []):
                log.warning("%s: delete failed: %s", self.spec.key, failure)

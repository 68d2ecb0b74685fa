"""trace's rules without AWS: what a log line says about an event, which status wins, the Logs Insights calls."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.dlq.helpers import IDFA
from tools.dlq.core import DlqMessage
from tools.trace.core import DlqHit, Fact, Record, decide, fact_of, facts_for
from tools.trace.sources import INSIGHTS_UUIDS_PER_QUERY, InsightsLogs

T0 = 1_796_029_200_000  # 2026-11-30T09:00:00Z


def fact(what: str, at_ms: int = T0, **details: Any) -> Fact:
    return Fact(at_ms, "deliverer" if what in ("delivered", "retrying") else "enricher", what, what, details)


def dead(reason: str = "invalid_event", **attrs: str) -> DlqHit:
    values = {"reason": reason, "uuid": "u-1", "failed_at_ms": str(T0), **attrs}
    typed = {k: {"DataType": "String", "StringValue": v} for k, v in values.items()}
    return DlqHit("kochava-prod-ingest-dlq", DlqMessage("m-1", "r-1", "{}", typed, default_stage="enricher"))


def test_a_completed_record_wins_over_everything() -> None:
    record = Record("install", "COMPLETED", {"delivered_at_ms": T0, "http_status": 200, "attempts": 3, "app": "g"})
    trace = decide("u-1", records=[record], dlq_hits=[dead()], facts=[fact("dead_lettered")])
    assert trace.status == "delivered"
    assert trace.details == {
        "delivered_at": "2026-11-30T09:00:00Z",
        "kind": "install",
        "app": "g",
        "http_status": 200,
        "attempts": 3,
        "source": "idempotency record",
    }


def test_a_dlq_message_wins_over_the_logs_and_says_what_to_do() -> None:
    trace = decide("u-1", dlq_hits=[dead(field="event", error=f"bad {IDFA}")], facts=[fact("forwarded")])
    assert trace.status == "dead_lettered"
    assert trace.details["field"] == "event" and trace.details["failed_at"] == "2026-11-30T09:00:00Z"
    assert IDFA not in trace.details["error"]
    assert "not replayable" in trace.details["what_to_do"]
    assert IDFA in decide("u-1", dlq_hits=[dead(error=f"bad {IDFA}")], reveal=True).details["error"]


def test_an_expired_record_not_yet_removed_still_says_delivered() -> None:
    record = Record("event", "EXPIRED", {"delivered_at_ms": T0, "http_status": 200})
    assert decide("u-1", records=[record]).status == "delivered"
    assert decide("u-1", records=[Record("event", "EXPIRED", {})]).status == "not_found"  # a crashed attempt's


def test_an_in_progress_record_is_pending() -> None:
    trace = decide("u-1", records=[Record("event", "INPROGRESS", {}, in_progress_until_ms=T0)])
    assert trace.status == "pending" and trace.details["in_progress_until"] == "2026-11-30T09:00:00Z"


@pytest.mark.parametrize(
    ("newest", "status"),
    [
        ("forwarded", "pending"),
        ("requeued", "pending"),
        ("retrying", "pending"),
        ("delivered", "delivered"),  # the record expired (15 days) but the logs still say so
        ("filtered", "filtered"),
        ("dead_lettered", "rejected"),  # no longer in a DLQ: purged
    ],
)
def test_without_record_or_dlq_message_the_newest_log_line_decides(newest: str, status: str) -> None:
    facts = [fact("forwarded", T0 - 1000), fact(newest, T0, reason="invalid_event")]
    assert decide("u-1", facts=facts).status == status


def test_nothing_found_is_not_found() -> None:
    trace = decide("u-1", searched={"logs": {"text": "the log file"}})
    assert (trace.status, trace.found, trace.searched) == ("not_found", False, {"logs": {"text": "the log file"}})


def test_a_log_line_is_about_an_event_only_by_its_correlation_id_or_the_enricher_lists() -> None:
    line = {"message": "delivered to Kochava", "correlation_id": "u-10", "kind": "event", "http_status": 200}
    assert fact_of(line, "u-1") is None  # a text search for u-1 finds u-10's line too
    assert fact_of(line, "u-10") is not None
    processed = {"message": "message processed", "filtered": {"heartbeat": ["u-2"]}, "forwarded": {"event": ["u-10"]}}
    assert fact_of(processed, "u-1") is None
    got = fact_of(processed, "u-2")
    assert got is not None and (got.what, got.details) == ("filtered", {"event_name": "heartbeat"})
    assert fact_of({"message": "batch done", "correlation_id": "u-1"}, "u-1") is None


def test_facts_are_in_time_order() -> None:
    lines = [
        (T0 + 5, {"message": "delivered to Kochava", "correlation_id": "u-1", "service": "deliverer"}),
        (T0, {"message": "message processed", "forwarded": {"event": ["u-1"]}, "service": "enricher"}),
    ]
    assert [f.what for f in facts_for("u-1", lines)] == ["forwarded", "delivered"]


class FakeLogs:
    """A CloudWatch Logs client answering Logs Insights queries after ``polls`` 'Running' answers."""

    def __init__(self, polls: int = 1, status: str = "Complete") -> None:
        self.polls, self.status = polls, status
        self.queries: list[dict[str, Any]] = []
        self.stopped: list[str] = []

    def start_query(self, **kwargs: Any) -> dict[str, str]:
        self.queries.append(kwargs)
        return {"queryId": f"q{len(self.queries)}"}

    def get_query_results(self, queryId: str) -> dict[str, Any]:
        if self.polls:
            self.polls -= 1
            return {"status": "Running", "results": []}
        message = '{"message": "delivered to Kochava", "correlation_id": "u-1", "service": "deliverer"}'
        row = [{"field": "@timestamp", "value": "2026-11-30 09:00:00.000"}, {"field": "@message", "value": message}]
        return {"status": self.status, "results": [row]}

    def stop_query(self, queryId: str) -> dict[str, Any]:
        self.stopped.append(queryId)
        return {}


def test_logs_insights_queries_both_groups_over_the_window_in_chunks() -> None:
    logs = FakeLogs()
    source = InsightsLogs(logs, ["/aws/lambda/a", "/aws/lambda/b"], T0 - 3_600_500, T0 + 500, sleep=lambda s: None)
    uuids = [f"u-{i}" for i in range(INSIGHTS_UUIDS_PER_QUERY + 1)]

    lines = source.lines(uuids)

    assert len(logs.queries) == 2  # 20 uuids per query
    first = logs.queries[0]
    assert first["logGroupNames"] == ["/aws/lambda/a", "/aws/lambda/b"]
    assert (first["startTime"], first["endTime"]) == ((T0 - 3_600_500) // 1000, T0 // 1000 + 1)
    assert '@message like "u-0" or @message like "u-1"' in first["queryString"]
    assert [(at, line["correlation_id"]) for at, line in lines] == [(T0, "u-1"), (T0, "u-1")]


def test_a_logs_insights_query_that_never_ends_is_stopped() -> None:
    logs = FakeLogs(polls=1000)
    source = InsightsLogs(logs, ["/g"], T0, T0, poll_s=1, timeout_s=3, sleep=lambda s: None)
    with pytest.raises(TimeoutError):
        source.lines(["u-1"])
    assert logs.stopped == ["q1"]


def test_a_failed_logs_insights_query_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="Failed"):
        InsightsLogs(FakeLogs(polls=0, status="Failed"), ["/g"], T0, T0, sleep=lambda s: None).lines(["u-1"])

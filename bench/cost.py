"""The cost model of issue 8: dollars per million events from list prices, at 1 and at 50 events per request.

Nothing is measured here: every price and every assumption is a named constant below (and in
docs/benchmarks.md), so the figures can be recomputed when one changes. Prices are us-east-1 list prices,
without free tiers or volume discounts; they are assumptions, checked against public pricing pages on
:data:`PRICES_CHECKED` (see docs/benchmarks.md), not billing data. Target (issue 27): at most $1.50 per million
events at 50 events per request.

Example:
    >>> rows = model(events_per_request=50)
    >>> round(sum(row.dollars for row in rows), 2) > 0
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.common import Result
from functions.adapters.sqs import SQS_BATCH_MAX_ENTRIES
from functions.names import DELIVERY_QUEUE, INGEST_QUEUE
from functions.pipeline.breaker import BreakerPolicy

NAME = "cost"
MILLION = 1_000_000

# --- List prices (us-east-1, USD) -------------------------------------------------------------------------------
PRICES_CHECKED = "2026-12-07"  # DynamoDB re-checked that day; the others on 2026-11-23
APIGW_REST_PER_M = 3.50  # REST API, first 333 M requests a month
SQS_PER_M = 0.40  # standard queue, per million requests; every 64 KB chunk of a payload is one request
SQS_CHUNK_BYTES = 64 * 1024
LAMBDA_ARM_PER_GB_S = 0.0000133334
LAMBDA_PER_M_REQUESTS = 0.20
# DynamoDB on-demand as AWS has billed it since it halved on-demand throughput prices on 2024-11-01 (before:
# 1.25 / 0.25 per million, the figures of the project's brief).
DDB_PER_M_WRU = 0.625
DDB_PER_M_RRU = 0.125
TARGET_DOLLARS_AT_50 = 1.50  # issue 27

# --- What the pipeline does (infra/resources.py, infra/constructs/functions.py, the handlers) --------------------
EVENT_BYTES = 700  # a native event of the sample mix, JSON (bench.workload: 698 bytes on average)
ENVELOPE_BYTES = 1_200  # a delivery-queue message: the Kochava payload in its envelope, plus attributes
INGEST_BATCH = INGEST_QUEUE.batch_size  # messages per enricher invocation (full batches assumed: high volume)
DELIVERY_BATCH = DELIVERY_QUEUE.batch_size  # messages per deliverer invocation
SEND_BATCH = 10  # SendMessageBatch entries; the enricher sends per ingest message (one body at a time)
MEMORY_GB = 0.5  # both functions: 512 MB (ENRICHER_MEMORY_MB, DELIVERER_MEMORY_MB)
IDEMPOTENCY_WRITES = 2  # per delivered event: INPROGRESS put + COMPLETED update, each <= 1 KB -> 1 WRU
PROFILE_READ_RRU = 0.5  # per event: one profile item (<= 4 KB) in a BatchGetItem, eventually consistent
PROFILE_WRITE_SHARE = 0.3  # per event: profiles are written only when a field changed or once a day (assumed)

# --- Durations (estimated; the CPU share is measured by `python -m bench transform`) ----------------------------
ENRICHER_INVOCATION_MS = 5.0  # Powertools wiring, event parsing, metrics flush
ENRICHER_CPU_MS_PER_EVENT = 0.2  # ~25 us parse + map on one x86 core here (bench), x2 for profile rules and
# envelopes, x3.5 because 512 MB buys ~0.29 vCPU (Lambda allots CPU in proportion to memory)
DDB_CALL_MS = 6.0  # one BatchGetItem / BatchWriteItem round trip
SQS_SEND_MS = 10.0  # one SendMessageBatch round trip
KOCHAVA_MS = 150.0  # one POST to Kochava; the 10 records of a batch go out concurrently (bench slow-kochava)
DELIVERER_OVERHEAD_MS = 25.0  # idempotency put + update (concurrent per worker), logging, metrics
DELIVERER_HOLD_MS = 30.0  # a held batch: breaker read, one visibility batch call, logging (no POST)


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    quantity: float  # billed units per million events
    unit: str
    dollars: float  # per million events


def _chunks(size_bytes: float) -> int:
    return max(1, math.ceil(size_bytes / SQS_CHUNK_BYTES))


def enricher_invocation_s(events_per_request: int) -> float:
    """Seconds one enricher invocation of a full batch (``INGEST_BATCH`` messages) takes (estimated above)."""
    sends_per_message = math.ceil(events_per_request / SEND_BATCH)
    per_message_ms = (
        DDB_CALL_MS  # BatchGetItem of the message's profiles
        + sends_per_message * SQS_SEND_MS
        + (DDB_CALL_MS if PROFILE_WRITE_SHARE > 0 else 0.0)  # BatchWriteItem of the changed ones
        + events_per_request * ENRICHER_CPU_MS_PER_EVENT
    )
    return (ENRICHER_INVOCATION_MS + INGEST_BATCH * per_message_ms) / 1000


def deliverer_invocation_s(kochava_ms: float = KOCHAVA_MS) -> float:
    """Seconds one deliverer invocation takes: its records go out concurrently, so about one Kochava round trip."""
    return (kochava_ms + DELIVERER_OVERHEAD_MS) / 1000


def model(events_per_request: int) -> list[Line]:
    """Billed quantities and dollars per million events."""
    requests = MILLION / events_per_request
    body = events_per_request * EVENT_BYTES
    ingest_invocations = requests / INGEST_BATCH
    delivery_invocations = MILLION / DELIVERY_BATCH
    sends_per_message = math.ceil(events_per_request / SEND_BATCH)

    sqs = {
        "SendMessage by API Gateway": requests * _chunks(body),
        "ingest ReceiveMessage (event source)": ingest_invocations * _chunks(INGEST_BATCH * body),
        "ingest DeleteMessageBatch (event source)": ingest_invocations,
        "SendMessageBatch to delivery (enricher)": requests
        * sends_per_message
        * _chunks(min(events_per_request, SEND_BATCH) * ENVELOPE_BYTES),
        "delivery ReceiveMessage (event source)": delivery_invocations * _chunks(DELIVERY_BATCH * ENVELOPE_BYTES),
        "delivery DeleteMessageBatch (event source)": delivery_invocations,
    }
    enricher_s = enricher_invocation_s(events_per_request)
    deliverer_s = deliverer_invocation_s()
    enricher_gb_s = ingest_invocations * enricher_s * MEMORY_GB
    deliverer_gb_s = delivery_invocations * deliverer_s * MEMORY_GB

    lines = [Line("API Gateway", "REST requests", requests, "requests", requests / MILLION * APIGW_REST_PER_M)]
    lines += [Line("SQS", item, count, "requests", count / MILLION * SQS_PER_M) for item, count in sqs.items()]
    lines += [
        Line(
            "Lambda",
            f"enricher compute ({enricher_s * 1000:.0f} ms per invocation of {INGEST_BATCH} messages)",
            enricher_gb_s,
            "GB-s",
            enricher_gb_s * LAMBDA_ARM_PER_GB_S,
        ),
        Line(
            "Lambda",
            f"deliverer compute ({deliverer_s * 1000:.0f} ms per invocation of {DELIVERY_BATCH} records)",
            deliverer_gb_s,
            "GB-s",
            deliverer_gb_s * LAMBDA_ARM_PER_GB_S,
        ),
        Line(
            "Lambda",
            "invocations (both functions)",
            ingest_invocations + delivery_invocations,
            "requests",
            (ingest_invocations + delivery_invocations) / MILLION * LAMBDA_PER_M_REQUESTS,
        ),
        Line(
            "DynamoDB",
            f"idempotency writes ({IDEMPOTENCY_WRITES} per delivery)",
            MILLION * IDEMPOTENCY_WRITES,
            "WRU",
            IDEMPOTENCY_WRITES * DDB_PER_M_WRU,
        ),
        Line(
            "DynamoDB",
            "profile reads",
            MILLION * PROFILE_READ_RRU,
            "RRU",
            PROFILE_READ_RRU * DDB_PER_M_RRU,
        ),
        Line(
            "DynamoDB",
            f"profile writes ({PROFILE_WRITE_SHARE:g} per event)",
            MILLION * PROFILE_WRITE_SHARE,
            "WRU",
            PROFILE_WRITE_SHARE * DDB_PER_M_WRU,
        ),
    ]
    return lines


def held_model(*, batched_visibility: bool = True) -> list[Line]:
    """What holding a million events for 24 hours through a Kochava outage costs (functions/pipeline/breaker.py):
    each event is received once per hold (``86,400 / hold_s`` = 144 holds), in batches of ``DELIVERY_BATCH``;
    each hold is one visibility change, batched 10 per ``ChangeMessageVisibilityBatch`` (issue 23) or one call
    per record (before); each batch is one short deliverer invocation that reads the breaker once.

    >>> before = sum(line.dollars for line in held_model(batched_visibility=False))
    >>> after = sum(line.dollars for line in held_model())
    >>> round(before), round(after)
    (70, 18)
    """
    holds = MILLION * BreakerPolicy().held_receives_per_day
    batches = holds / DELIVERY_BATCH
    visibility_calls = batches * math.ceil(DELIVERY_BATCH / SQS_BATCH_MAX_ENTRIES) if batched_visibility else holds
    how = "ChangeMessageVisibilityBatch, 10 per call" if batched_visibility else "ChangeMessageVisibility per record"
    return [
        Line("SQS", f"ReceiveMessage ({DELIVERY_BATCH} per call)", batches, "requests", batches / MILLION * SQS_PER_M),
        Line("SQS", how, visibility_calls, "requests", visibility_calls / MILLION * SQS_PER_M),
        Line(
            "Lambda",
            "deliverer invocations (held batches)",
            batches,
            "requests",
            batches / MILLION * LAMBDA_PER_M_REQUESTS,
        ),
        Line(
            "Lambda",
            f"deliverer duration ({DELIVERER_HOLD_MS:.0f} ms per held batch)",
            batches * DELIVERER_HOLD_MS / 1000 * MEMORY_GB,
            "GB-s",
            batches * DELIVERER_HOLD_MS / 1000 * MEMORY_GB * LAMBDA_ARM_PER_GB_S,
        ),
        Line(
            "DynamoDB",
            "breaker GetItem (eventually consistent)",
            batches * 0.5,
            "RRU",
            batches * 0.5 / MILLION * DDB_PER_M_RRU,
        ),
    ]


def held_text() -> str:
    out = []
    for batched in (False, True):
        lines = held_model(batched_visibility=batched)
        label = "batched visibility (now)" if batched else "one visibility call per record (before)"
        out.append(f"a million events held 24 h, {label}: ${sum(line.dollars for line in lines):.2f}")
        out += [
            f"  {line.service:<11} {line.item:<62} {line.quantity:>14,.0f} {line.unit:<8} ${line.dollars:.3f}"
            for line in lines
        ]
    return "\n".join(out)


def by_service(lines: list[Line]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in lines:
        totals[line.service] = totals.get(line.service, 0.0) + line.dollars
    return totals


def text(events_per_request: int) -> str:
    lines = model(events_per_request)
    total = sum(line.dollars for line in lines)
    out = [f"{events_per_request} event(s) per request: ${total:.2f} per million events"]
    for line in lines:
        out.append(f"  {line.service:<11} {line.item:<62} {line.quantity:>12,.0f} {line.unit:<8} ${line.dollars:.3f}")
    shares = ", ".join(f"{service} {dollars / total:.0%}" for service, dollars in by_service(lines).items())
    out.append(f"  shares: {shares}")
    return "\n".join(out)


def run(echo: bool = True) -> list[Result]:
    results = []
    for per_request in (1, 50):
        lines = model(per_request)
        total = sum(line.dollars for line in lines)
        services = by_service(lines)
        top = max(services, key=lambda name: services[name])
        if echo:
            print(text(per_request), flush=True)
        target = f"<= ${TARGET_DOLLARS_AT_50:.2f}" if per_request == 50 else ""
        results.append(
            Result(
                NAME,
                f"$ per million events at {per_request} event(s) per request (list prices, assumptions)",
                total,
                target,
                total <= TARGET_DOLLARS_AT_50 if per_request == 50 else None,
                unit="$",
                detail=f"prices of {PRICES_CHECKED}; largest: {top} {services[top] / total:.0%}; "
                + ", ".join(f"{name} ${dollars:.2f}" for name, dollars in services.items())
                + f"; with one idempotency write per delivery instead of {IDEMPOTENCY_WRITES}: "
                f"${total - (IDEMPOTENCY_WRITES - 1) * DDB_PER_M_WRU:.2f} (not adopted, docs/benchmarks.md)",
            )
        )
    held = sum(line.dollars for line in held_model())
    if echo:
        print(held_text(), flush=True)
    results.append(
        Result(NAME, "$ per million events held 24 h through a Kochava outage (list prices)", held, unit="$")
    )
    return results

"""Sizing: the throughput ceilings of a stack deployed with the defaults, and the settings and monthly cost for 1 M,
10 M, 100 M and 1 B events a day. docs/scale.md shows :func:`ceilings_table` and :func:`volume_table` verbatim;
``tests/unit/test_scale.py`` recomputes both from ``functions/names.py`` and the CDK defaults (``PipelineConfig``),
so the document cannot drift from the code.

Every input is a named constant: the defaults come from infra/config.py and functions/names.py, durations and
per-event quantities from bench/cost.py (the cost model), prices below (us-east-1 list prices, checked 2026-12-07:
API Gateway REST tiers, DynamoDB on-demand after AWS halved it on 2024-11-01, the price bench/cost.py uses too).

Example:
    >>> round(deliverer_ceiling(PipelineConfig()))  # 5 invocations x 10 requests in flight / 0.3 s
    167
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench import cost
from functions.names import DELIVERY_QUEUE, INGEST_QUEUE
from infra.config import PipelineConfig

DAY_S = 24 * 3600
MONTH_DAYS = 30
KOCHAVA_LATENCY_S = 0.3  # what one Kochava POST is assumed to take for the ceilings (the figure)
PEAK_TO_AVERAGE = 3.0  # the busiest hour's rate over the day's average (assumed: app traffic follows the day)
EVENTS_PER_REQUEST = 50  # the volume table assumes batching callers (the Segment libraries send up to 100)
VOLUMES = (1_000_000, 10_000_000, 100_000_000, 1_000_000_000)
# API Gateway REST, per million requests a month, by tier (first 333 M, next 667 M, next 19 B, over 20 B).
APIGW_TIERS = ((333e6, 3.50), (667e6, 2.80), (19e9, 2.38), (math.inf, 1.51))
DDB_PER_M_WRU = 0.625  # on-demand, since 2024-11-01
DDB_PER_M_RRU = 0.125
# Quotas met on the way (the defaults of a new account and region; all can be raised by asking AWS).
ACCOUNT_API_RPS = 10_000  # API Gateway, requests per second across the account and region
ACCOUNT_LAMBDA_CONCURRENCY = 1_000
DDB_TABLE_WRU_S = 40_000  # on-demand: write request units per second per table


def api_ceiling(config: PipelineConfig, events_per_request: int) -> float:
    """Events per second the stage's throttle lets in (requests/s x events per request)."""
    return config.throttle_rate_limit * events_per_request


def enricher_ceiling(config: PipelineConfig, events_per_request: int) -> float:
    """Events per second the enricher handles at its maximum concurrency, full batches."""
    events_per_invocation = INGEST_QUEUE.batch_size * events_per_request
    return config.enricher_max_concurrency * events_per_invocation / cost.enricher_invocation_s(events_per_request)


def deliverer_ceiling(config: PipelineConfig, kochava_latency_s: float = KOCHAVA_LATENCY_S) -> float:
    """Events per second delivered: invocations x requests in flight each / one Kochava round trip.

    A batch holds ``DELIVERY_QUEUE.batch_size`` records and sends ``deliverer_max_workers`` at once, so with the
    defaults (10 and 10) one round trip sends the whole batch.
    """
    in_flight = min(config.deliverer_max_workers, DELIVERY_QUEUE.batch_size)
    return config.deliverer_max_concurrency * in_flight / kochava_latency_s


def ceilings_table(config: PipelineConfig | None = None) -> str:
    """The markdown table of the default ceilings, in events per second and per day."""
    config = config or PipelineConfig()
    rows = [
        (
            f"API Gateway throttle ({config.throttle_rate_limit:g} requests/s, burst {config.throttle_burst_limit})",
            f"{api_ceiling(config, 1):,.0f} at 1 event per request, {api_ceiling(config, 100):,.0f} at 100",
            api_ceiling(config, 1),
        ),
        (
            f"enricher ({config.enricher_max_concurrency} concurrent x {INGEST_QUEUE.batch_size} messages, "
            f"{cost.enricher_invocation_s(1) * 1000:.0f} ms per batch)",
            f"{enricher_ceiling(config, 1):,.0f} at 1 event per request, "
            f"{enricher_ceiling(config, EVENTS_PER_REQUEST):,.0f} at {EVENTS_PER_REQUEST}",
            enricher_ceiling(config, 1),
        ),
        (
            f"deliverer ({config.deliverer_max_concurrency} concurrent x {config.deliverer_max_workers} requests in "
            f"flight / {KOCHAVA_LATENCY_S * 1000:.0f} ms Kochava)",
            f"{deliverer_ceiling(config):,.0f}",
            deliverer_ceiling(config),
        ),
    ]
    lines = ["| stage | events/s | per day (at 1 event per request) |", "|---|---|---|"]
    lines += [f"| {name} | {rate} | {per_s * DAY_S / 1e6:,.1f} M |" for name, rate, per_s in rows]
    return "\n".join(lines)


def _apigw_dollars(requests_per_month: float) -> float:
    dollars, left = 0.0, requests_per_month
    for size, price in APIGW_TIERS:
        taken = min(left, size)
        dollars += taken / 1e6 * price
        left -= taken
        if left <= 0:
            break
    return dollars


def monthly_cost(events_per_day: int, events_per_request: int = EVENTS_PER_REQUEST) -> float:
    """Dollars a month at list prices: bench/cost.py's quantities, API Gateway tiered, DynamoDB at today's price."""
    events = events_per_day * MONTH_DAYS
    millions = events / 1e6
    dollars = _apigw_dollars(events / events_per_request)
    for line in cost.model(events_per_request):
        if line.service in ("SQS", "Lambda"):
            dollars += line.dollars * millions
        elif line.service == "DynamoDB":
            price = DDB_PER_M_WRU if line.unit == "WRU" else DDB_PER_M_RRU
            dollars += line.quantity / 1e6 * price * millions
    return dollars


@dataclass(frozen=True)
class Sizing:
    """What a volume needs: its peak rate and the settings that carry it."""

    events_per_day: int
    peak_events_s: float
    deliverer_max_concurrency: int
    enricher_max_concurrency: int
    throttle_rate_limit: int
    first_bottleneck: str
    dollars_per_month: float


def sizing(events_per_day: int, config: PipelineConfig | None = None) -> Sizing:
    """The settings for ``events_per_day`` (peak = ``PEAK_TO_AVERAGE`` x average, ``EVENTS_PER_REQUEST`` per
    request), and which default ceiling the peak meets first ("-" when none)."""
    config = config or PipelineConfig()
    peak = events_per_day / DAY_S * PEAK_TO_AVERAGE
    in_flight = min(config.deliverer_max_workers, DELIVERY_QUEUE.batch_size)
    per_enricher = enricher_ceiling(config, EVENTS_PER_REQUEST) / config.enricher_max_concurrency
    ceilings = {
        "deliverer": deliverer_ceiling(config),
        "enricher": enricher_ceiling(config, EVENTS_PER_REQUEST),
        "API throttle": api_ceiling(config, EVENTS_PER_REQUEST),
    }
    over = [name for name, ceiling in sorted(ceilings.items(), key=lambda item: item[1]) if peak > ceiling]
    return Sizing(
        events_per_day=events_per_day,
        peak_events_s=peak,
        deliverer_max_concurrency=max(
            config.deliverer_max_concurrency, math.ceil(peak * KOCHAVA_LATENCY_S / in_flight)
        ),
        enricher_max_concurrency=max(config.enricher_max_concurrency, math.ceil(peak / per_enricher)),
        throttle_rate_limit=max(int(config.throttle_rate_limit), math.ceil(peak / EVENTS_PER_REQUEST * 2)),
        first_bottleneck=over[0] if over else "-",
        dollars_per_month=monthly_cost(events_per_day),
    )


def volume_table(config: PipelineConfig | None = None) -> str:
    """The markdown table for 1 M, 10 M, 100 M and 1 B events a day."""
    lines = [
        "| events a day | peak events/s | first default ceiling hit | delivererMaxConcurrency | enricherMaxConcurrency "
        "| throttleRateLimit | $ a month |",
        "|---|---|---|---|---|---|---|",
    ]
    for volume in VOLUMES:
        s = sizing(volume, config)
        lines.append(
            f"| {volume / 1e6:,.0f} M | {s.peak_events_s:,.0f} | {s.first_bottleneck} | {s.deliverer_max_concurrency} "
            f"| {s.enricher_max_concurrency} | {s.throttle_rate_limit} | {s.dollars_per_month:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - prints what docs/scale.md shows
    print(ceilings_table(), end="\n\n")
    print(volume_table())

"""docs/scale.md cannot drift: its tables are recomputed from functions/names.py and the CDK defaults, and the
headline ceiling (the deliverer's ~167 events/s at a 300 ms Kochava) is checked by independent arithmetic."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.scale import (
    KOCHAVA_LATENCY_S,
    ceilings_table,
    deliverer_ceiling,
    monthly_cost,
    sizing,
    volume_table,
)
from functions.names import DELIVERY_QUEUE
from infra.config import PipelineConfig

DOC = (Path(__file__).resolve().parents[2] / "docs" / "scale.md").read_text()


def _generated(name: str) -> str:
    match = re.search(rf"<!-- generated: bench\.scale\.{name} -->\n(.*?)\n<!-- end generated -->", DOC, re.DOTALL)
    assert match, f"docs/scale.md has no generated block {name}"
    return match.group(1)


def test_the_ceilings_table_is_what_the_defaults_give() -> None:
    assert _generated("ceilings_table") == ceilings_table(), "docs/scale.md is stale: python -m bench.scale"


def test_the_volume_table_is_what_the_defaults_give() -> None:
    assert _generated("volume_table") == volume_table(), "docs/scale.md is stale: python -m bench.scale"


def test_the_deliverer_ceiling_is_concurrency_times_workers_over_kochava_latency() -> None:
    defaults = PipelineConfig()
    assert (defaults.deliverer_max_concurrency, defaults.deliverer_max_workers, DELIVERY_QUEUE.batch_size) == (
        5,
        10,
        10,
    )
    assert deliverer_ceiling(defaults) == pytest.approx(5 * 10 / 0.3)
    assert KOCHAVA_LATENCY_S == 0.3
    assert "about 167 events/s delivered" in DOC
    doubled = PipelineConfig(deliverer_max_concurrency=10)
    assert deliverer_ceiling(doubled) == pytest.approx(2 * deliverer_ceiling(defaults)), "a setting moves the ceiling"


def test_each_volume_gets_settings_that_carry_its_peak() -> None:
    for volume in (1_000_000, 10_000_000, 100_000_000, 1_000_000_000):
        size = sizing(volume)
        carried = deliverer_ceiling(PipelineConfig(deliverer_max_concurrency=size.deliverer_max_concurrency))
        assert carried >= size.peak_events_s
    assert sizing(1_000_000).first_bottleneck == "-"
    assert sizing(10_000_000).first_bottleneck == "deliverer"


def test_the_monthly_cost_grows_with_volume_and_api_gateway_tiers_make_it_sublinear() -> None:
    costs = [monthly_cost(volume) for volume in (1_000_000, 10_000_000, 100_000_000, 1_000_000_000)]
    assert costs == sorted(costs)
    assert costs[3] < 1000 * costs[0]

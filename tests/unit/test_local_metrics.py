"""The local stack runs the handlers with Powertools metrics disabled; what they count must not outlive the call
(``tools.local.stack.metrics_discarded``): Powertools' disabled flush keeps the counts, and the first real flush
afterwards (another handler in the same process) would report them as its own."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from tools.local.stack import metrics_discarded


def counting_handler(event: dict[str, Any], context: Any) -> str:
    metrics = Metrics(namespace="kochava-local-test", service="enricher")

    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> str:
        metrics.add_metric(name="EventsReceived", unit=MetricUnit.Count, value=1000)
        return "done"

    return handler(event, context)


@pytest.fixture(autouse=True)
def disabled(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    Metrics().clear_metrics()
    yield
    Metrics().clear_metrics()


def test_with_metrics_disabled_powertools_keeps_the_counts_after_the_call() -> None:
    """Why the wrapper exists: without it the counts stay in the process-wide metric set."""
    assert counting_handler({}, None) == "done"
    assert Metrics().provider.metric_set["EventsReceived"]["Value"] == [1000.0]


def test_a_local_invocation_leaves_no_counts_behind() -> None:
    assert metrics_discarded(counting_handler)({}, None) == "done"
    assert Metrics().provider.metric_set == {}


def test_a_failing_local_invocation_leaves_no_counts_behind_either() -> None:
    def failing(event: dict[str, Any], context: Any) -> str:
        Metrics().add_metric(name="EventsReceived", unit=MetricUnit.Count, value=3)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        metrics_discarded(failing)({}, None)
    assert Metrics().provider.metric_set == {}

"""``tools.smoke --alarm``: the alarm goes to ALARM and back to OK through CloudWatch (moto), and an alarm that
would page nobody, or that does not exist, is a failure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from tools.smoke import page_alarm

NAME = "kochava-smoke-IngestDlqNotEmpty"


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="us-east-1")


def _alarm(cloudwatch: Any, *, actions: list[str]) -> None:
    cloudwatch.put_metric_alarm(
        AlarmName=NAME,
        MetricName="ApproximateNumberOfMessagesVisible",
        Namespace="AWS/SQS",
        Statistic="Maximum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        AlarmActions=actions,
        OKActions=actions,
    )


def test_the_alarm_goes_to_alarm_and_back(cloudwatch: Any) -> None:
    _alarm(cloudwatch, actions=["arn:aws:sns:us-east-1:123456789012:kochava-smoke-alarms"])
    assert page_alarm(cloudwatch, NAME, hold_s=0) == []
    assert cloudwatch.describe_alarms(AlarmNames=[NAME])["MetricAlarms"][0]["StateValue"] == "OK"


def test_an_alarm_without_actions_pages_nobody(cloudwatch: Any) -> None:
    _alarm(cloudwatch, actions=[])
    assert page_alarm(cloudwatch, NAME, hold_s=0) == [f"{NAME} has no alarm actions: nobody would be paged"]


def test_a_missing_alarm_fails(cloudwatch: Any) -> None:
    assert page_alarm(cloudwatch, NAME, hold_s=0) == [f"no alarm named {NAME}"]

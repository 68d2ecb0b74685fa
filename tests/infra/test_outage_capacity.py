"""Capacity and Kochava-outage settings of the stack: concurrency caps on both event sources, a delivery queue
that outlives the outage target, age alarms before any retention limit, the outage alarm, the breaker table and its
least-privilege grant, and a retention on API Gateway's execution logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from functions.adapters import breaker_dynamodb
from functions.deliverer import metrics as deliverer_metrics
from functions.names import DELIVERY_QUEUE, ENV_DELIVERY_STATE_TABLE, INGEST_QUEUE
from functions.pipeline.breaker import BreakerPolicy
from infra.constructs.functions import DELIVERY_STATE_TABLE_ACTIONS
from tests.infra.support import Synthesized

OUTAGE_TARGET_S = 24 * 3600


def _props(synth: Synthesized, construct: Any) -> dict[str, Any]:
    props: dict[str, Any] = synth.template.to_json()["Resources"][synth.logical_id(construct)]["Properties"]
    return props


def _alarms(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {a["Properties"]["AlarmName"]: a["Properties"] for a in synth.resources("AWS::CloudWatch::Alarm").values()}


def test_both_event_sources_have_a_maximum_concurrency(default_stack: Synthesized, iam_stack: Synthesized) -> None:
    for synth in (default_stack, iam_stack):
        by_queue = {
            m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: m["Properties"]
            for m in synth.resources("AWS::Lambda::EventSourceMapping").values()
        }
        stack, config = synth.stack, synth.config
        ingest = by_queue[synth.logical_id(stack.queues.ingest.queue)]
        delivery = by_queue[synth.logical_id(stack.queues.delivery.queue)]
        assert ingest["ScalingConfig"] == {"MaximumConcurrency": config.enricher_max_concurrency}
        assert delivery["ScalingConfig"] == {"MaximumConcurrency": config.deliverer_max_concurrency}
    assert default_stack.config.enricher_max_concurrency == 20


def test_the_delivery_queue_holds_an_outage_and_redrives_a_crash_loop_before_expiry(
    default_stack: Synthesized,
) -> None:
    props = _props(default_stack, default_stack.stack.queues.delivery.queue)
    retention, visibility = props["MessageRetentionPeriod"], props["VisibilityTimeout"]
    receives = props["RedrivePolicy"]["maxReceiveCount"]
    assert retention >= OUTAGE_TARGET_S
    policy = BreakerPolicy(retention_s=retention, max_receive_count=receives)
    # Held a whole day, a record collects fewer receives than the redrive needs...
    assert OUTAGE_TARGET_S / policy.hold_s < receives
    # ... and gives up (dead-letters itself with a reason) before SQS could expire it.
    assert policy.give_up_age_s > OUTAGE_TARGET_S
    # A consumer crashing on a message every time still has it redriven before it expires.
    assert receives * visibility < retention


def test_age_alarms_fire_well_before_retention_limits(default_stack: Synthesized) -> None:
    alarms = _alarms(default_stack)
    prefix = default_stack.stack.names.prefix
    for spec in (INGEST_QUEUE, DELIVERY_QUEUE):
        label = spec.key.capitalize()
        early = alarms[f"{prefix}-{label}QueueOldestMessage"]
        assert early["Threshold"] == default_stack.config.queue_age_alarm_seconds < spec.retention_s / 100
        for kind, retention in (("Queue", spec.retention_s), ("Dlq", spec.dlq_retention_s)):
            late = alarms[f"{prefix}-{label}{kind}NearRetention"]
            assert late["MetricName"] == "ApproximateAgeOfOldestMessage"
            assert retention / 2 <= late["Threshold"] <= retention * 0.8


def test_kochava_outage_alarm_fires_once_per_outage(default_stack: Synthesized) -> None:
    alarm = _alarms(default_stack)[f"{default_stack.stack.names.prefix}-KochavaOutage"]
    assert alarm["MetricName"] == deliverer_metrics.BREAKER_OPEN
    assert alarm["Namespace"] == default_stack.stack.names.metrics_namespace
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "deliverer"}]
    assert alarm["Statistic"] == "Maximum" and alarm["Threshold"] == 1
    # In ALARM while any invocation saw the breaker open in the last 3 periods (held records come back every
    # 10-11 minutes): no OK between two holds of the same outage, no data (no outage) is not breaching.
    assert alarm["EvaluationPeriods"] * alarm["Period"] > BreakerPolicy().longest_hold_s
    assert alarm["DatapointsToAlarm"] == 1
    assert alarm["TreatMissingData"] == "notBreaching"


def test_delivery_state_table_and_the_deliverers_grant(default_stack: Synthesized) -> None:
    stack = default_stack.stack
    table = _props(default_stack, stack.tables.delivery_state)
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": breaker_dynamodb.PK, "KeyType": "HASH"}]
    variables = _props(default_stack, stack.functions.deliverer.function)["Environment"]["Variables"]
    assert variables[ENV_DELIVERY_STATE_TABLE] == {"Ref": default_stack.logical_id(stack.tables.delivery_state)}
    arn = {"Fn::GetAtt": [default_stack.logical_id(stack.tables.delivery_state), "Arn"]}
    granted = {
        (role, action)
        for role, function in (("enricher", stack.functions.enricher), ("deliverer", stack.functions.deliverer))
        for policy in default_stack.resources("AWS::IAM::Policy").values()
        if {"Ref": default_stack.logical_id(function.role)} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if arn in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    }
    assert granted == {("deliverer", action) for action in DELIVERY_STATE_TABLE_ACTIONS}
    # Exactly the calls the store makes.
    source = Path(breaker_dynamodb.__file__ or "").read_text()
    called = {
        f"dynamodb:{name}"
        for name in ("GetItem", "UpdateItem", "PutItem", "DeleteItem", "Query", "Scan")
        if f".{_snake(name)}(" in source
    }
    assert called == set(DELIVERY_STATE_TABLE_ACTIONS)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def test_api_execution_logs_expire(default_stack: Synthesized) -> None:
    api = default_stack.stack.ingest_api
    group = _props(default_stack, api.execution_logs)
    assert group["RetentionInDays"] == default_stack.config.log_retention_days
    name = group["LogGroupName"]["Fn::Join"][1]
    assert name[0] == "API-Gateway-Execution-Logs_"
    assert name[1] == {"Ref": default_stack.logical_id(api.api)}
    assert name[2] == f"/{default_stack.config.stage}"
    stage = default_stack.template.to_json()["Resources"][default_stack.logical_id(api.api.deployment_stage)]
    assert default_stack.logical_id(api.execution_logs) in stage.get("DependsOn", [])

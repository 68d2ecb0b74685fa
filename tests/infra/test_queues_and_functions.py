"""Queues, DLQ wiring, tables and the Lambda functions with their SQS event sources."""

from __future__ import annotations

from typing import Any

from aws_cdk import aws_lambda as lambda_

from functions.names import (
    DELIVERY_QUEUE,
    DELIVERY_STATE_TABLE,
    ENV_DELIVERER_MAX_WORKERS,
    ENV_DELIVERY_DLQ_URL,
    ENV_DELIVERY_QUEUE_URL,
    ENV_IDEMPOTENCY_TABLE,
    ENV_INGEST_DLQ_URL,
    ENV_INGEST_QUEUE_URL,
    ENV_KOCHAVA_APP_ID_IOS,
    ENV_KOCHAVA_APP_IDS_BY_BUNDLE,
    ENV_MAX_RECEIVE_COUNT,
    ENV_POWERTOOLS_METRICS_NAMESPACE,
    ENV_POWERTOOLS_SERVICE_NAME,
    ENV_PROFILE_TABLE,
    ENV_PROFILE_TTL_DAYS,
    HANDLER_AUTHORIZER,
    HANDLER_DELIVERER,
    HANDLER_ENRICHER,
    IDEMPOTENCY_TABLE,
    INGEST_QUEUE,
    PROFILE_TABLE,
)
from infra.constructs.functions import LAMBDA_RUNTIME
from tests.infra.support import Synthesized


def _resource(synth: Synthesized, construct: Any) -> dict[str, Any]:
    resource: dict[str, Any] = synth.template.to_json()["Resources"][synth.logical_id(construct)]
    return resource


def test_each_queue_redrives_to_its_dlq_after_max_receive_count(
    default_stack: Synthesized, iam_stack: Synthesized
) -> None:
    for synth, expected in ((default_stack, INGEST_QUEUE.max_receive_count), (iam_stack, 3)):
        for pair in synth.stack.queues.all:
            redrive = _resource(synth, pair.queue)["Properties"]["RedrivePolicy"]
            # The delivery queue's is high on purpose: records held through a Kochava outage (breaker.py).
            wanted = DELIVERY_QUEUE.max_receive_count if pair.spec is DELIVERY_QUEUE else expected
            assert redrive["maxReceiveCount"] == wanted
            assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [synth.logical_id(pair.dlq), "Arn"]}
            dlq = _resource(synth, pair.dlq)["Properties"]
            assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
            assert "RedrivePolicy" not in dlq


def test_visibility_timeout_is_at_least_six_times_the_consumer_timeout(default_stack: Synthesized) -> None:
    for pair, function in zip(default_stack.stack.queues.all, default_stack.stack.functions.all, strict=True):
        visibility = _resource(default_stack, pair.queue)["Properties"]["VisibilityTimeout"]
        timeout = _resource(default_stack, function.function)["Properties"]["Timeout"]
        assert visibility >= 6 * timeout


def test_queues_are_encrypted_and_refuse_plain_http(default_stack: Synthesized) -> None:
    queues = default_stack.resources("AWS::SQS::Queue")
    assert len(queues) == 4
    for queue in queues.values():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True
    protected = set()
    for policy in default_stack.resources("AWS::SQS::QueuePolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}:
                assert statement["Action"] == "sqs:*" and statement["Principal"] == {"AWS": "*"}
                protected.update(ref["Ref"] for ref in policy["Properties"]["Queues"])
    assert protected == set(queues)


def test_tables_are_on_demand_with_ttl_and_point_in_time_recovery(default_stack: Synthesized) -> None:
    tables = {
        t["Properties"]["TableName"]: t["Properties"] for t in default_stack.resources("AWS::DynamoDB::Table").values()
    }
    assert set(tables) == {"kochava-dev-idempotency", "kochava-dev-device-profiles", "kochava-dev-delivery-state"}
    for spec in (IDEMPOTENCY_TABLE, PROFILE_TABLE, DELIVERY_STATE_TABLE):
        table = tables[f"kochava-dev-{spec.key}"]
        assert table["BillingMode"] == "PAY_PER_REQUEST"
        assert table["KeySchema"] == [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
        assert table["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
        assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        # profileBackupDays' default; the delivery state (breaker, attempt counts) is worth a day at most
        wanted_days = 1 if spec is DELIVERY_STATE_TABLE else 35
        assert table["PointInTimeRecoverySpecification"]["RecoveryPeriodInDays"] == wanted_days


def test_functions_run_the_latest_python_on_arm64_with_json_logs_and_tracing(default_stack: Synthesized) -> None:
    newest = max(
        (getattr(lambda_.Runtime, name) for name in dir(lambda_.Runtime) if name.startswith("PYTHON_")),
        key=lambda runtime: tuple(int(part) for part in runtime.name.removeprefix("python").split(".")),
    )
    assert LAMBDA_RUNTIME.name == newest.name
    functions = default_stack.resources("AWS::Lambda::Function")
    handlers = {f["Properties"]["Handler"] for f in functions.values()}
    assert handlers == {HANDLER_ENRICHER, HANDLER_DELIVERER, HANDLER_AUTHORIZER}
    for function in functions.values():
        props = function["Properties"]
        assert props["Runtime"] == newest.name
        assert props["Architectures"] == ["arm64"]
        assert props["LoggingConfig"]["LogFormat"] == "JSON"
        assert props["TracingConfig"] == {"Mode": "Active"}
    for log_group in default_stack.resources("AWS::Logs::LogGroup").values():
        assert log_group["Properties"]["RetentionInDays"] == default_stack.config.log_retention_days


def test_environment_is_the_real_wiring(default_stack: Synthesized, iam_stack: Synthesized) -> None:
    stack = default_stack.stack
    enricher = _resource(default_stack, stack.functions.enricher.function)["Properties"]["Environment"]["Variables"]
    deliverer = _resource(default_stack, stack.functions.deliverer.function)["Properties"]["Environment"]["Variables"]
    ref = default_stack.logical_id
    assert enricher[ENV_INGEST_QUEUE_URL] == {"Ref": ref(stack.queues.ingest.queue)}
    assert enricher[ENV_INGEST_DLQ_URL] == {"Ref": ref(stack.queues.ingest.dlq)}
    assert enricher[ENV_DELIVERY_QUEUE_URL] == {"Ref": ref(stack.queues.delivery.queue)}
    assert enricher[ENV_PROFILE_TABLE] == {"Ref": ref(stack.tables.profiles)}
    assert enricher[ENV_PROFILE_TTL_DAYS] == "180"
    assert enricher[ENV_KOCHAVA_APP_ID_IOS] == "koios-test-guid"
    assert deliverer[ENV_DELIVERY_QUEUE_URL] == {"Ref": ref(stack.queues.delivery.queue)}
    assert ENV_INGEST_QUEUE_URL not in deliverer
    assert deliverer[ENV_DELIVERY_DLQ_URL] == {"Ref": ref(stack.queues.delivery.dlq)}
    assert deliverer[ENV_IDEMPOTENCY_TABLE] == {"Ref": ref(stack.tables.idempotency)}
    assert deliverer[ENV_DELIVERER_MAX_WORKERS] == str(default_stack.config.deliverer_max_workers)
    for variables, service, receives in (
        (enricher, "enricher", INGEST_QUEUE.max_receive_count),
        (deliverer, "deliverer", DELIVERY_QUEUE.max_receive_count),
    ):
        assert variables[ENV_POWERTOOLS_SERVICE_NAME] == service
        assert variables[ENV_POWERTOOLS_METRICS_NAMESPACE]
        assert variables[ENV_MAX_RECEIVE_COUNT] == str(receives)
    iam_enricher = _resource(iam_stack, iam_stack.stack.functions.enricher.function)["Properties"]
    assert (
        iam_enricher["Environment"]["Variables"][ENV_KOCHAVA_APP_IDS_BY_BUNDLE] == '{"com.example.app": "guid-bundle"}'
    )
    assert iam_enricher["Environment"]["Variables"][ENV_MAX_RECEIVE_COUNT] == "3"
    assert iam_enricher["Environment"]["Variables"][ENV_PROFILE_TTL_DAYS] == "90"
    [iam_profiles] = [
        t["Properties"]
        for t in iam_stack.resources("AWS::DynamoDB::Table").values()
        if t["Properties"]["TableName"] == "kochava-test-device-profiles"
    ]
    assert iam_profiles["PointInTimeRecoverySpecification"]["RecoveryPeriodInDays"] == 7


def test_event_sources_report_batch_item_failures_with_a_batching_window(
    default_stack: Synthesized, iam_stack: Synthesized
) -> None:
    for synth, concurrency in ((default_stack, default_stack.config.deliverer_max_concurrency), (iam_stack, 7)):
        stack = synth.stack
        mappings = {
            m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]: m["Properties"]
            for m in synth.resources("AWS::Lambda::EventSourceMapping").values()
        }
        assert set(mappings) == {
            synth.logical_id(stack.queues.ingest.queue),
            synth.logical_id(stack.queues.delivery.queue),
        }
        for mapping in mappings.values():
            assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
            assert mapping["MaximumBatchingWindowInSeconds"] >= 1
        deliverer = mappings[synth.logical_id(stack.queues.delivery.queue)]
        assert deliverer["FunctionName"] == {"Ref": synth.logical_id(stack.functions.deliverer.function)}
        assert deliverer["ScalingConfig"] == {"MaximumConcurrency": concurrency}
        assert deliverer["BatchSize"] == DELIVERY_QUEUE.batch_size

"""Alarms to the topic, the dashboard, the stack outputs and the cdk-nag AwsSolutions result."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import assertions

from functions.deliverer import handler as deliverer_handler
from functions.deliverer import metrics as deliverer_metrics
from functions.enricher import handler as enricher_handler
from functions.enricher import metrics as enricher_metrics
from functions.names import (
    ENV_POWERTOOLS_METRICS_NAMESPACE,
    ENV_POWERTOOLS_SERVICE_NAME,
    FUNCTION_DELIVERER,
    FUNCTION_ENRICHER,
    METRICS_NAMESPACE,
)
from infra.resources import (
    OUTPUT_API_KEY_ID,
    OUTPUT_API_URL,
    OUTPUT_DELIVERY_DLQ_URL,
    OUTPUT_DELIVERY_QUEUE_URL,
    OUTPUT_INGEST_DLQ_URL,
    OUTPUT_INGEST_QUEUE_URL,
    OUTPUT_SOURCE_API_KEY_IDS,
)
from tests.infra.support import Synthesized

QUEUE_OUTPUTS = (OUTPUT_INGEST_QUEUE_URL, OUTPUT_INGEST_DLQ_URL, OUTPUT_DELIVERY_QUEUE_URL, OUTPUT_DELIVERY_DLQ_URL)


def _alarms(synth: Synthesized) -> list[dict[str, Any]]:
    return [alarm["Properties"] for alarm in synth.resources("AWS::CloudWatch::Alarm").values()]


def _queue_of(alarm: dict[str, Any]) -> str:
    (dimension,) = alarm["Dimensions"]
    assert dimension["Name"] == "QueueName"
    return str(dimension["Value"]["Fn::GetAtt"][0])


def test_every_alarm_notifies_the_topic(default_stack: Synthesized) -> None:
    (topic_id,) = default_stack.resources("AWS::SNS::Topic")
    for alarm in _alarms(default_stack):
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
        assert alarm["OKActions"] == [{"Ref": topic_id}]


def test_alarms_cover_dlqs_queue_age_function_errors_and_api_5xx(default_stack: Synthesized) -> None:
    stack, alarms = default_stack.stack, _alarms(default_stack)
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for alarm in alarms:
        by_metric.setdefault(alarm["MetricName"], []).append(alarm)
    dlq_alarms = by_metric["ApproximateNumberOfMessagesVisible"]
    assert {_queue_of(a) for a in dlq_alarms} == {default_stack.logical_id(p.dlq) for p in stack.queues.all}
    for alarm in dlq_alarms:
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    age_alarms = by_metric["ApproximateAgeOfOldestMessage"]
    assert default_stack.logical_id(stack.queues.ingest.queue) in {_queue_of(a) for a in age_alarms}
    errors = by_metric["Errors"]
    functions = {default_stack.logical_id(f.function) for f in stack.functions.all}
    assert {a["Dimensions"][0]["Value"]["Ref"] for a in errors} == functions
    assert len(by_metric["5XXError"]) == 1


def test_topic_is_encrypted_tls_only_and_emails_when_configured(default_stack: Synthesized) -> None:
    (topic,) = default_stack.resources("AWS::SNS::Topic").values()
    assert "KmsMasterKeyId" in topic["Properties"]
    default_stack.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"}
    )
    (policy,) = default_stack.resources("AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )
    (key,) = default_stack.resources("AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True


def test_no_email_subscription_without_an_alarm_email(iam_stack: Synthesized) -> None:
    iam_stack.template.resource_count_is("AWS::SNS::Subscription", 0)


def test_dashboard_exists(default_stack: Synthesized) -> None:
    (dashboard,) = default_stack.resources("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "kochava-dev-pipeline"


def _dashboard_body(synth: Synthesized) -> dict[str, Any]:
    """The dashboard's JSON body, with CloudFormation tokens (region, names) replaced by ``TOKEN``."""
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    if isinstance(body, dict):
        _, parts = body["Fn::Join"]
        body = "".join(part if isinstance(part, str) else "TOKEN" for part in parts)
    parsed: dict[str, Any] = json.loads(body)
    return parsed


def _metric_names(module: Any) -> set[str]:
    return {
        value
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and not name.endswith("_DIMENSION")
    }


def test_dashboard_graphs_the_lambdas_own_emf_metrics(default_stack: Synthesized) -> None:
    widgets = _dashboard_body(default_stack)["widgets"]
    graphed: set[tuple[str, str, str]] = set()  # (namespace, metric, service)
    searches: list[str] = []
    for widget in widgets:
        for metric in widget.get("properties", {}).get("metrics", []):
            if isinstance(metric[-1], dict) and "expression" in metric[-1]:
                searches.append(metric[-1]["expression"])
            elif len(metric) >= 4 and metric[2] == "service":
                graphed.add((metric[0], metric[1], metric[3]))
    # Every metric the handlers emit, in the namespace and with the service dimension they emit it with.
    stage = default_stack.stack.names.stage
    namespace = default_stack.stack.names.metrics_namespace
    assert namespace == f"{METRICS_NAMESPACE}/{stage}", "one namespace per stage"
    assert (enricher_handler.SERVICE, deliverer_handler.SERVICE) == (FUNCTION_ENRICHER, FUNCTION_DELIVERER)
    for names, service in (
        (_metric_names(enricher_metrics), FUNCTION_ENRICHER),
        (_metric_names(deliverer_metrics) - {deliverer_metrics.DEAD_LETTERED}, FUNCTION_DELIVERER),
    ):
        missing = {name for name in names if (namespace, name, service) not in graphed}
        assert not missing, f"{service} metrics not on the dashboard: {sorted(missing)}"
    # The per-reason counts, whatever the reasons.
    for metric, service in (("EventsRejected", "enricher"), ("DeadLettered", "deliverer")):
        query = f'{{{namespace},service,reason}} MetricName="{metric}" service="{service}"'
        assert f"SEARCH('{query}', 'Sum', 300)" in searches, searches
    # ... which is what the deployed functions are told to emit.
    stack = default_stack.stack
    for function, service in (
        (stack.functions.enricher, FUNCTION_ENRICHER),
        (stack.functions.deliverer, FUNCTION_DELIVERER),
    ):
        resource = default_stack.resources("AWS::Lambda::Function")[default_stack.logical_id(function.function)]
        variables = resource["Properties"]["Environment"]["Variables"]
        assert variables[ENV_POWERTOOLS_METRICS_NAMESPACE] == namespace
        assert variables[ENV_POWERTOOLS_SERVICE_NAME] == service


def test_outputs_the_dlq_tool_reads(default_stack: Synthesized, iam_stack: Synthesized) -> None:
    outputs = default_stack.template.to_json()["Outputs"]
    for key in (OUTPUT_API_URL, OUTPUT_API_KEY_ID, *QUEUE_OUTPUTS):
        assert key in outputs, key
    for key, construct in zip(
        QUEUE_OUTPUTS,
        (
            default_stack.stack.queues.ingest.queue,
            default_stack.stack.queues.ingest.dlq,
            default_stack.stack.queues.delivery.queue,
            default_stack.stack.queues.delivery.dlq,
        ),
        strict=True,
    ):
        assert outputs[key]["Value"] == {"Ref": default_stack.logical_id(construct)}
    assert OUTPUT_API_KEY_ID not in iam_stack.template.to_json()["Outputs"], "no API key in IAM mode"
    assert set(outputs) == {OUTPUT_API_URL, OUTPUT_API_KEY_ID, OUTPUT_SOURCE_API_KEY_IDS, *QUEUE_OUTPUTS}, (
        "each value published once"
    )
    assert OUTPUT_SOURCE_API_KEY_IDS not in iam_stack.template.to_json()["Outputs"], "no bound keys configured"
    key = default_stack.stack.ingest_api.bound_keys["ios-backend"]
    assert {"Ref": default_stack.logical_id(key)} in outputs[OUTPUT_SOURCE_API_KEY_IDS]["Value"]["Fn::Join"][1]


@pytest.mark.parametrize("variant", ["default_stack", "iam_stack"])
def test_cdk_nag_aws_solutions_reports_no_unsuppressed_error_or_warning(
    variant: str, request: pytest.FixtureRequest
) -> None:
    synth: Synthesized = request.getfixturevalue(variant)
    pattern = assertions.Match.string_like_regexp("AwsSolutions-.*")
    errors = synth.annotations.find_error("*", pattern)
    warnings = synth.annotations.find_warning("*", pattern)
    assert [(e.id, e.entry.data) for e in errors] == []
    assert [(w.id, w.entry.data) for w in warnings] == []


def _suppressions(synth: Synthesized) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, resource in synth.template.to_json()["Resources"].items():
        for suppression in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            found.append((logical_id, suppression))
    return found


def test_every_nag_suppression_is_scoped_and_reasoned(default_stack: Synthesized) -> None:
    suppressions = _suppressions(default_stack)
    assert suppressions, "the stack has known, suppressed findings"
    stack_metadata = default_stack.stack.node.metadata
    assert not [m for m in stack_metadata if "cdk_nag" in json.dumps(m.data, default=str)], "no stack-wide suppression"
    for logical_id, suppression in suppressions:
        assert len(suppression["reason"]) >= 40, (logical_id, suppression)
        if suppression["id"] in ("AwsSolutions-IAM4", "AwsSolutions-IAM5"):
            assert suppression.get("applies_to"), f"{logical_id}: {suppression['id']} must name what it allows"
    suppressed_ids = {s["id"] for _, s in suppressions}
    assert suppressed_ids <= {
        "AwsSolutions-IAM4",  # API Gateway's account CloudWatch role (AWS-managed push-to-logs policy)
        "AwsSolutions-IAM5",  # X-Ray's Resource "*"
        "AwsSolutions-APIG3",  # no WAF by default
        "AwsSolutions-APIG4",  # API-key mode
        "AwsSolutions-COG4",  # no Cognito for server-to-server callers
    }

"""The ingest API: authentication on every method, direct SQS integrations, validation, JSON errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Stack, assertions
from aws_cdk import aws_sqs as sqs

from functions.names import ATTR_RECEIVED_AT_MS, ATTR_REQUEST_ID, ATTR_ROUTE, BODY_TOO_LARGE_ERROR, ROUTE_PATHS, ROUTES
from infra.config import PipelineConfig
from infra.constructs.ingest_api import IngestApi, SchemaMissingError, load_body_schema, send_message_template
from infra.resources import BODY_SCHEMA_FILE, ResourceNames
from tests.infra.support import REPO_ROOT, Synthesized


def _methods(synth: Synthesized) -> dict[str, dict]:
    methods = synth.resources("AWS::ApiGateway::Method")
    assert len(methods) == len(ROUTES), "exactly one POST per route, nothing else"
    return methods


def test_every_method_requires_an_api_key(default_stack: Synthesized) -> None:
    for method in _methods(default_stack).values():
        assert method["Properties"]["ApiKeyRequired"] is True
        assert method["Properties"]["HttpMethod"] == "POST"


def test_iam_mode_requires_sigv4_on_every_method_and_creates_no_key(iam_stack: Synthesized) -> None:
    for method in _methods(iam_stack).values():
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM"
    iam_stack.template.resource_count_is("AWS::ApiGateway::ApiKey", 0)


def test_usage_plan_throttles_the_key_on_the_stage(default_stack: Synthesized) -> None:
    config = default_stack.config
    plans = default_stack.resources("AWS::ApiGateway::UsagePlan")
    (plan,) = plans.values()
    throttle = plan["Properties"]["Throttle"]
    assert throttle == {"RateLimit": config.throttle_rate_limit, "BurstLimit": config.throttle_burst_limit}
    assert len(plan["Properties"]["ApiStages"]) == 1
    default_stack.template.resource_count_is("AWS::ApiGateway::UsagePlanKey", 1)


def test_integrations_are_direct_url_encoded_sqs_send_message(default_stack: Synthesized) -> None:
    ingest_queue = default_stack.logical_id(default_stack.stack.queues.ingest.queue)
    routes_seen = set()
    for method in _methods(default_stack).values():
        integration = method["Properties"]["Integration"]
        assert integration["Type"] == "AWS"
        assert integration["PassthroughBehavior"] == "NEVER"
        uri = json.dumps(integration["Uri"])
        assert ":sqs:path/" in uri and ingest_queue in uri and "lambda" not in uri
        template = integration["RequestTemplates"]["application/json"]
        assert template.startswith("Action=SendMessage&MessageBody=$util.urlEncode($input.body)&")
        route = next(r for r in ROUTES if template.endswith(f"StringValue={r}"))
        routes_seen.add(route)
        assert template == send_message_template(route)
        for name, value in (
            (ATTR_REQUEST_ID, "$context.requestId"),
            (ATTR_RECEIVED_AT_MS, "$context.requestTimeEpoch"),
        ):
            number = template.split(f"Name={name}&")[0].rsplit("MessageAttribute.", 1)[1].rstrip(".")
            assert f"MessageAttribute.{number}.Value.StringValue={value}" in template
        assert f"Name={ATTR_ROUTE}&" in template
        assert integration["RequestParameters"] == {
            "integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"
        }
    assert routes_seen == set(ROUTES)


def test_no_lambda_serves_the_api(default_stack: Synthesized) -> None:
    for permission in default_stack.resources("AWS::Lambda::Permission").values():
        assert permission["Properties"]["Principal"] != "apigateway.amazonaws.com"
    for method in _methods(default_stack).values():
        assert method["Properties"]["Integration"]["Type"] not in ("AWS_PROXY", "HTTP_PROXY")


def test_only_an_sqs_2xx_answers_202_everything_else_is_an_error(default_stack: Synthesized) -> None:
    for method in _methods(default_stack).values():
        responses = method["Properties"]["Integration"]["IntegrationResponses"]
        accepted = [r for r in responses if r["StatusCode"].startswith("2")]
        assert len(accepted) == 1 and accepted[0]["SelectionPattern"] == r"2\d{2}"
        assert "$context.requestId" in accepted[0]["ResponseTemplates"]["application/json"]
        assert "MessageId" in accepted[0]["ResponseTemplates"]["application/json"]
        default = [r for r in responses if "SelectionPattern" not in r]
        assert len(default) == 1 and default[0]["StatusCode"].startswith("5"), "unmatched SQS answers must be 5xx"
        assert all(
            r["StatusCode"].startswith("5") for r in responses if r is not accepted[0] and "SelectionPattern" in r
        )
        declared = {r["StatusCode"] for r in method["Properties"]["MethodResponses"]}
        assert {r["StatusCode"] for r in responses} <= declared


def test_sqs_too_long_answers_the_same_413_as_tools_local(default_stack: Synthesized) -> None:
    from tools.local.api import _too_large

    for method in _methods(default_stack).values():
        responses = method["Properties"]["Integration"]["IntegrationResponses"]
        [default] = [r for r in responses if "SelectionPattern" not in r]
        template = default["ResponseTemplates"]["application/json"]
        assert "responseOverride.status = 413" in template
        assert f'"error": "{BODY_TOO_LARGE_ERROR}"' in template
    assert _too_large().document["error"] == BODY_TOO_LARGE_ERROR


def test_body_is_validated_against_the_generated_schema_per_route(default_stack: Synthesized) -> None:
    (validator,) = default_stack.resources("AWS::ApiGateway::RequestValidator").values()
    assert validator["Properties"]["ValidateRequestBody"] is True
    models = {
        m["Properties"]["Name"]: m["Properties"] for m in default_stack.resources("AWS::ApiGateway::Model").values()
    }
    for route in ROUTES:
        schema_file = REPO_ROOT / "infra" / "schemas" / BODY_SCHEMA_FILE.format(route=route)
        model = models[f"{route.capitalize()}Body"]
        assert model["ContentType"] == "application/json"
        assert model["Schema"] == json.loads(schema_file.read_text())
        assert model["Schema"]["$schema"].startswith("http://json-schema.org/draft-04/")
    for method in _methods(default_stack).values():
        assert "RequestValidatorId" in method["Properties"]
        assert set(method["Properties"]["RequestModels"]) == {"application/json"}


def test_routes_are_the_documented_paths(default_stack: Synthesized) -> None:
    parts = {r["Properties"]["PathPart"] for r in default_stack.resources("AWS::ApiGateway::Resource").values()}
    expected = {part for path in ROUTE_PATHS.values() for part in path.strip("/").split("/")}
    assert parts == expected


@pytest.mark.parametrize(("response_type", "status"), [
    ("BAD_REQUEST_BODY", "400"),
    ("INVALID_API_KEY", "403"),
    ("MISSING_AUTHENTICATION_TOKEN", "403"),
    ("REQUEST_TOO_LARGE", "413"),
    ("THROTTLED", "429"),
    ("QUOTA_EXCEEDED", "429"),
])  # fmt: skip
def test_gateway_errors_answer_json(default_stack: Synthesized, response_type: str, status: str) -> None:
    responses = default_stack.resources("AWS::ApiGateway::GatewayResponse").values()
    (response,) = [r["Properties"] for r in responses if r["Properties"]["ResponseType"] == response_type]
    assert response["StatusCode"] == status
    body = response["ResponseTemplates"]["application/json"]
    assert body.startswith("{") and '"message": $context.error.messageString' in body
    # The template is JSON once API Gateway substitutes its (quoted) variables.
    substituted = body.replace("$context.error.messageString", '"m"').replace("$context", "x")
    assert isinstance(json.loads(substituted), dict)


def test_stage_has_access_logs_execution_logs_and_tracing(default_stack: Synthesized) -> None:
    (stage,) = default_stack.resources("AWS::ApiGateway::Stage").values()
    props = stage["Properties"]
    assert props["TracingEnabled"] is True
    assert "DestinationArn" in props["AccessLogSetting"]
    assert json.loads(props["AccessLogSetting"]["Format"])["requestId"] == "$context.requestId"
    (method_settings,) = props["MethodSettings"]
    assert method_settings["LoggingLevel"] in ("ERROR", "INFO")
    assert method_settings["DataTraceEnabled"] is False


def test_a_missing_schema_fails_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(SchemaMissingError, match="make schemas"):
        load_body_schema("native", tmp_path)


def _deployment_id(schema_dir: Path) -> str:
    stack = Stack(App(), "DeploymentIdentity")
    queue = sqs.Queue(stack, "Queue")
    IngestApi(
        stack, "Api", names=ResourceNames("t"), config=PipelineConfig(), ingest_queue=queue, schema_dir=schema_dir
    )
    (logical_id,) = assertions.Template.from_stack(stack).find_resources("AWS::ApiGateway::Deployment")
    return str(logical_id)


def test_a_schema_change_redeploys_the_stage(tmp_path: Path) -> None:
    """Models live in the deployment snapshot: a new schema must produce a new Deployment resource."""
    schemas = REPO_ROOT / "infra" / "schemas"
    before, after = tmp_path / "before", tmp_path / "after"
    for folder in (before, after):
        folder.mkdir()
        for route in ROUTES:
            name = BODY_SCHEMA_FILE.format(route=route)
            (folder / name).write_text((schemas / name).read_text())
    changed = json.loads((after / BODY_SCHEMA_FILE.format(route=ROUTES[0])).read_text())
    changed["description"] = "changed"
    (after / BODY_SCHEMA_FILE.format(route=ROUTES[0])).write_text(json.dumps(changed))
    assert _deployment_id(before) != _deployment_id(after)
    assert _deployment_id(before) == _deployment_id(before)

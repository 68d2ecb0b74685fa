"""The ingest API: authentication on every method, direct SQS integrations, validation, JSON errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, assertions
from aws_cdk import aws_sqs as sqs

from functions.names import (
    ATTR_API_KEY_ID,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    BODY_MODELS,
    BODY_TOO_LARGE_ERROR,
    INGEST_PATHS,
    MISSING_KEY_MESSAGE,
    ROUTE_PATHS,
    ROUTES,
    body_media_types,
)
from infra.config import PipelineConfig
from infra.constructs.ingest_api import (
    IngestApi,
    SchemaMissingError,
    load_body_schema,
    model_name,
    send_message_template,
)
from infra.resources import BODY_SCHEMA_FILE, ResourceNames
from tests.infra.support import REPO_ROOT, Synthesized
from tests.infra.test_assets import _repo_modules_imported_by


def _methods(synth: Synthesized) -> dict[str, dict]:
    methods = synth.resources("AWS::ApiGateway::Method")
    assert len(methods) == len(INGEST_PATHS), "exactly one POST per path, nothing else"
    return methods


def _path_of(synth: Synthesized, method: dict[str, Any]) -> str:
    """The full path of a method, from its resource chain."""
    resources = synth.resources("AWS::ApiGateway::Resource")
    parts = []
    ref = method["Properties"]["ResourceId"]["Ref"]
    while True:
        resource = resources[ref]["Properties"]
        parts.append(resource["PathPart"])
        parent = resource["ParentId"]
        if "Ref" not in parent:
            return "/" + "/".join(reversed(parts))
        ref = parent["Ref"]


def _authorizers(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {key: value["Properties"] for key, value in synth.resources("AWS::ApiGateway::Authorizer").items()}


def test_every_method_requires_an_api_key_read_by_the_cached_authorizer(default_stack: Synthesized) -> None:
    """x-api-key on the native paths, HTTP Basic auth on the Segment paths; API Gateway checks the key itself."""
    authorizers = _authorizers(default_stack)
    (api,) = default_stack.resources("AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["ApiKeySourceType"] == "AUTHORIZER"
    specs = {spec.path: spec for spec in INGEST_PATHS}
    for method in _methods(default_stack).values():
        props = method["Properties"]
        assert props["ApiKeyRequired"] is True
        assert props["HttpMethod"] == "POST"
        assert props["AuthorizationType"] == "CUSTOM"
        authorizer = authorizers[props["AuthorizerId"]["Ref"]]
        header = "Authorization" if specs[_path_of(default_stack, method)].segment_api else "x-api-key"
        assert authorizer["IdentitySource"] == f"method.request.header.{header}"
        assert authorizer["Type"] == "REQUEST"
        assert authorizer["AuthorizerResultTtlInSeconds"] == default_stack.config.authorizer_cache_seconds > 0


def test_the_authorizer_is_a_small_stdlib_lambda_that_writes_only_its_logs(default_stack: Synthesized) -> None:
    authorizer = default_stack.stack.authorizer
    assert authorizer is not None
    function = default_stack.resources("AWS::Lambda::Function")[default_stack.logical_id(authorizer.function)]
    props = function["Properties"]
    assert props["Handler"] == "functions.authorizer.handler.lambda_handler"
    assert props["MemorySize"] == 128 and props["Architectures"] == ["arm64"]
    top_level = {path.name for path in authorizer.asset_path.iterdir()}
    assert top_level == {"functions"}, "no dependencies: the standard library only"
    code = {str(p.relative_to(authorizer.asset_path)) for p in authorizer.asset_path.rglob("*.py")}
    assert code == {
        "functions/__init__.py",
        "functions/envconfig.py",  # the shared reading of the environment: standard library only
        "functions/authorizer/__init__.py",
        "functions/authorizer/config.py",
        "functions/authorizer/core.py",
        "functions/authorizer/handler.py",
    }
    modules = _repo_modules_imported_by("functions.authorizer.handler")
    assert "functions.names" not in modules, "kept out of the authorizer's import path (cold start)"
    for name in modules:
        module = authorizer.asset_path.joinpath(*name.split("."))
        assert (module / "__init__.py").is_file() or module.with_suffix(".py").is_file(), f"{name} not in the asset"
    permissions = [
        p["Properties"]
        for p in default_stack.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert permissions, "API Gateway may invoke the authorizer"
    assert all(
        p["FunctionName"]["Fn::GetAtt"][0] == default_stack.logical_id(authorizer.function) for p in permissions
    ), "API Gateway invokes the authorizer and nothing else"


def test_api_gateway_decompresses_request_bodies(default_stack: Synthesized, iam_stack: Synthesized) -> None:
    for synth in (default_stack, iam_stack):
        (api,) = synth.resources("AWS::ApiGateway::RestApi").values()
        assert isinstance(api["Properties"]["MinimumCompressionSize"], int)


def test_iam_mode_requires_sigv4_on_every_method_and_creates_no_key(iam_stack: Synthesized) -> None:
    for method in _methods(iam_stack).values():
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM"
        template = method["Properties"]["Integration"]["RequestTemplates"]["application/json"]
        assert ATTR_API_KEY_ID not in template, "no API key id under IAM auth (SQS refuses an empty attribute)"
    iam_stack.template.resource_count_is("AWS::ApiGateway::ApiKey", 0)
    iam_stack.template.resource_count_is("AWS::ApiGateway::Authorizer", 0)
    assert iam_stack.stack.authorizer is None


def test_usage_plan_throttles_the_key_on_the_stage(default_stack: Synthesized) -> None:
    config = default_stack.config
    plans = default_stack.resources("AWS::ApiGateway::UsagePlan")
    (plan,) = plans.values()
    throttle = plan["Properties"]["Throttle"]
    assert throttle == {"RateLimit": config.throttle_rate_limit, "BurstLimit": config.throttle_burst_limit}
    assert len(plan["Properties"]["ApiStages"]) == 1
    # the default key and the one sourceApps key, both in the plan
    default_stack.template.resource_count_is("AWS::ApiGateway::UsagePlanKey", 2)
    default_stack.template.resource_count_is("AWS::ApiGateway::ApiKey", 2)


def test_source_apps_become_bound_keys_and_the_enrichers_source_apps(default_stack: Synthesized) -> None:
    stack = default_stack.stack
    (name,) = default_stack.config.source_apps
    key = stack.ingest_api.bound_keys[name]
    key_resource = default_stack.resources("AWS::ApiGateway::ApiKey")[default_stack.logical_id(key)]
    assert key_resource["Properties"]["Name"] == f"{stack.names.prefix}-{name}"
    enricher = default_stack.resources("AWS::Lambda::Function")[
        default_stack.logical_id(stack.functions.enricher.function)
    ]
    value = enricher["Properties"]["Environment"]["Variables"]["SOURCE_APPS"]
    # {"<key id>": [apps]}: the id is only known at deploy time, so the JSON is joined around a Ref to the key.
    joined = value["Fn::Join"][1]
    assert {"Ref": default_stack.logical_id(key)} in joined
    as_text = "".join(part if isinstance(part, str) else '"KEYID"' for part in joined).replace('""KEYID""', '"KEYID"')
    assert json.loads(as_text) == {"KEYID": default_stack.config.source_apps[name]}
    # every key must be bound once one is (requireBoundKeys, on by default): the default key may send nothing
    assert enricher["Properties"]["Environment"]["Variables"]["REQUIRE_BOUND_KEYS"] == "true"
    deliverer = default_stack.resources("AWS::Lambda::Function")[
        default_stack.logical_id(stack.functions.deliverer.function)
    ]
    assert "SOURCE_APPS" not in deliverer["Properties"]["Environment"]["Variables"]


def test_integrations_are_direct_url_encoded_sqs_send_message(default_stack: Synthesized) -> None:
    ingest_queue = default_stack.logical_id(default_stack.stack.queues.ingest.queue)
    specs = {spec.path: spec for spec in INGEST_PATHS}
    seen = set()
    for method in _methods(default_stack).values():
        spec = specs[_path_of(default_stack, method)]
        seen.add(spec.path)
        integration = method["Properties"]["Integration"]
        assert integration["Type"] == "AWS"
        assert integration["PassthroughBehavior"] == "NEVER"
        uri = json.dumps(integration["Uri"])
        assert ":sqs:path/" in uri and ingest_queue in uri and "lambda" not in uri
        templates = integration["RequestTemplates"]
        assert set(templates) == set(body_media_types(spec)), "one template per content type read as JSON"
        assert len(set(templates.values())) == 1, "every content type gets the same SendMessage"
        template = templates["application/json"]
        assert template == send_message_template(spec.route, call_type=spec.call_type)
        if spec.call_type is None:
            assert template.startswith("Action=SendMessage&MessageBody=$util.urlEncode($input.body)&")
        else:
            assert "\n" not in template, "one line: a newline would reach the form body"
            assert f"%22type%22%3A%22{spec.call_type}%22%7D&" in template
        for name, value in (
            (ATTR_REQUEST_ID, "$context.requestId"),
            (ATTR_RECEIVED_AT_MS, "$context.requestTimeEpoch"),
            (ATTR_ROUTE, spec.route),
            (ATTR_API_KEY_ID, "$context.identity.apiKeyId"),
        ):
            number = template.split(f"Name={name}&")[0].rsplit("MessageAttribute.", 1)[1].rstrip(".")
            assert f"MessageAttribute.{number}.Value.StringValue={value}" in template
        assert integration["RequestParameters"] == {
            "integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"
        }
    assert seen == set(specs)


def test_the_single_call_template_mirrors_the_local_api(default_stack: Synthesized) -> None:
    """The VTL steps (trim, cut at the last brace, append the type) are tools/local's with_call_type, step by step."""
    from infra.constructs.ingest_api import call_body_template
    from tools.local.api import with_call_type

    template = call_body_template("track")
    assert "$input.body.trim()" in template
    assert '.lastIndexOf("}")' in template and ".trim())" in template
    assert '#if($callHead != "{")%2C#{end}' in template
    assert template.endswith("%22type%22%3A%22track%22%7D")
    assert with_call_type('{"a": 1}', "track") == '{"a": 1,"type":"track"}'
    assert with_call_type("{}", "track") == '{"type":"track"}'


def test_segment_paths_answer_200_success_native_paths_202(default_stack: Synthesized) -> None:
    specs = {spec.path: spec for spec in INGEST_PATHS}
    for method in _methods(default_stack).values():
        spec = specs[_path_of(default_stack, method)]
        responses = method["Properties"]["Integration"]["IntegrationResponses"]
        (success,) = [r for r in responses if r["StatusCode"].startswith("2")]
        body = success["ResponseTemplates"]["application/json"]
        if spec.segment_api:
            assert success["StatusCode"] == "200" and '"success": true' in body
        else:
            assert success["StatusCode"] == "202" and '"success"' not in body


def test_no_lambda_serves_the_api(default_stack: Synthesized) -> None:
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
    from tools.local.api import too_large

    for method in _methods(default_stack).values():
        responses = method["Properties"]["Integration"]["IntegrationResponses"]
        [default] = [r for r in responses if "SelectionPattern" not in r]
        template = default["ResponseTemplates"]["application/json"]
        assert "responseOverride.status = 413" in template
        assert f'"error": "{BODY_TOO_LARGE_ERROR}"' in template
    assert too_large().document["error"] == BODY_TOO_LARGE_ERROR


def test_body_is_validated_against_the_generated_schema_per_path(default_stack: Synthesized) -> None:
    (validator,) = default_stack.resources("AWS::ApiGateway::RequestValidator").values()
    assert validator["Properties"]["ValidateRequestBody"] is True
    models = {m["Properties"]["Name"]: m for m in default_stack.resources("AWS::ApiGateway::Model").values()}
    assert set(models) == {model_name(model) for model in BODY_MODELS}
    for model in BODY_MODELS:
        schema_file = REPO_ROOT / "infra" / "schemas" / BODY_SCHEMA_FILE.format(route=model)
        props = models[model_name(model)]["Properties"]
        assert props["ContentType"] == "application/json"
        assert props["Schema"] == json.loads(schema_file.read_text())
        assert props["Schema"]["$schema"].startswith("http://json-schema.org/draft-04/")
    logical_ids = {
        m["Properties"]["Name"]: logical for logical, m in default_stack.resources("AWS::ApiGateway::Model").items()
    }
    specs = {spec.path: spec for spec in INGEST_PATHS}
    for method in _methods(default_stack).values():
        spec = specs[_path_of(default_stack, method)]
        assert "RequestValidatorId" in method["Properties"]
        # One model per content type read as JSON: a body under any of them is validated (a non-JSON one is a 400).
        assert method["Properties"]["RequestModels"] == {
            media: {"Ref": logical_ids[model_name(spec.body_model)]} for media in body_media_types(spec)
        }


def test_routes_are_the_documented_paths(default_stack: Synthesized) -> None:
    paths = {_path_of(default_stack, method) for method in _methods(default_stack).values()}
    assert paths == {spec.path for spec in INGEST_PATHS}
    assert set(ROUTE_PATHS.values()) <= paths
    assert {"/v1/batch", "/v1/track", "/v1/screen", "/v1/identify", "/v1/page", "/v1/group", "/v1/alias"} <= paths


@pytest.mark.parametrize(("response_type", "status"), [
    ("BAD_REQUEST_BODY", "400"),
    ("INVALID_API_KEY", "403"),
    ("UNAUTHORIZED", "401"),
    ("ACCESS_DENIED", "403"),
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
    message = json.dumps(MISSING_KEY_MESSAGE) if response_type == "UNAUTHORIZED" else "$context.error.messageString"
    assert body.startswith("{") and f'"message": {message}' in body
    assert '"code": "' in body, "the Segment libraries log code and message"
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


def test_api_key_mode_without_the_authorizer_is_refused() -> None:
    stack = Stack(App(), "NoAuthorizer")
    with pytest.raises(ValueError, match="authorizer"):
        IngestApi(stack, "Api", names=ResourceNames("t"), config=PipelineConfig(), ingest_queue=sqs.Queue(stack, "Q"))


def test_a_missing_schema_fails_with_a_clear_message(tmp_path: Path) -> None:
    with pytest.raises(SchemaMissingError, match="make schemas"):
        load_body_schema("native", tmp_path)


def _deployment_id(schema_dir: Path) -> str:
    stack = Stack(App(), "DeploymentIdentity")
    queue = sqs.Queue(stack, "Queue")
    config = PipelineConfig(auth_mode="iam")  # no authorizer (and so no Lambda asset) needed for this
    IngestApi(stack, "Api", names=ResourceNames("t"), config=config, ingest_queue=queue, schema_dir=schema_dir)
    (logical_id,) = assertions.Template.from_stack(stack).find_resources("AWS::ApiGateway::Deployment")
    return str(logical_id)


def test_a_schema_change_redeploys_the_stage(tmp_path: Path) -> None:
    """Models live in the deployment snapshot: a new schema must produce a new Deployment resource."""
    schemas = REPO_ROOT / "infra" / "schemas"
    before, after = tmp_path / "before", tmp_path / "after"
    for folder in (before, after):
        folder.mkdir()
        for model in BODY_MODELS:
            name = BODY_SCHEMA_FILE.format(route=model)
            (folder / name).write_text((schemas / name).read_text())
    changed = json.loads((after / BODY_SCHEMA_FILE.format(route=ROUTES[0])).read_text())
    changed["description"] = "changed"
    (after / BODY_SCHEMA_FILE.format(route=ROUTES[0])).write_text(json.dumps(changed))
    assert _deployment_id(before) != _deployment_id(after)
    assert _deployment_id(before) == _deployment_id(before)


def test_one_template_per_content_type_keeps_the_stack_template_well_under_cloudformations_limit(
    default_stack: Synthesized,
) -> None:
    """15 content types x 10 paths of SendMessage templates: CloudFormation takes at most 1 MB of template (from S3,
    where cdk deploy puts a template over 51,200 bytes)."""
    size = len(json.dumps(default_stack.template.to_json()).encode())
    assert size < 500_000

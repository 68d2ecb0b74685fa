"""The ingest API: a REST API that writes request bodies straight into the ingest queue (no Lambda on the hot path).

``POST /v1/events`` (route ``native``) and ``POST /v1/segment`` (route ``segment``):

1. authentication: an API key on every method (usage plan with throttle and quota), or IAM (SigV4) instead when
   ``authMode=iam``;
2. the request validator checks the body against the route's JSON-schema model (``infra/schemas``, generated from
   the pydantic contract by ``make schemas``); only ``application/json`` is accepted (anything else: 415);
3. a direct SQS ``SendMessage`` integration sends the body, URL-encoded, exactly as received, with the message
   attributes ``request_id``, ``received_at_ms`` and ``route`` (docs/DESIGN.md);
4. SQS answered 2xx: ``202 {"message_id", "request_id"}``; anything else is a 5xx (SQS refused a body too large:
   413; invalid characters: 400), never a false 202.

API Gateway's own errors (400/403/413/415/429/5xx) answer JSON bodies. Access logs (JSON) and execution logs
(without request/response bodies: they hold device identifiers) go to CloudWatch; X-Ray tracing is on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import Aws, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from functions.names import (
    API_MESSAGE_ATTRIBUTES,
    ATTR_RECEIVED_AT_MS,
    ATTR_REQUEST_ID,
    ATTR_ROUTE,
    BODY_TOO_LARGE_ERROR,
    ROUTE_PATHS,
    ROUTES,
)
from infra.config import PipelineConfig
from infra.resources import BODY_SCHEMA_FILE, ResourceNames

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
JSON = "application/json"
STATUS_ACCEPTED = "202"
STATUS_QUEUE_REJECTED_BODY = "400"
STATUS_BODY_TOO_LARGE = "413"
STATUS_QUEUE_FAILED = "500"
STATUS_QUEUE_UNAVAILABLE = "503"


class SchemaMissingError(FileNotFoundError):
    """A request-body schema is not in infra/schemas: run `make schemas`."""


def load_body_schema(route: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """The draft-4 JSON schema of ``route``'s request body, as API Gateway takes it for a model."""
    path = schema_dir / BODY_SCHEMA_FILE.format(route=route)
    if not path.is_file():
        raise SchemaMissingError(f"{path} is missing: generate the request schemas with `make schemas`")
    schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return schema


def send_message_template(route: str) -> str:
    """The integration request: an SQS ``SendMessage`` (query protocol) of the raw body plus three attributes."""
    values = {
        ATTR_REQUEST_ID: "$context.requestId",
        ATTR_RECEIVED_AT_MS: "$context.requestTimeEpoch",
        ATTR_ROUTE: route,
    }
    attributes = [(name, data_type, values[name]) for name, data_type in API_MESSAGE_ATTRIBUTES]
    parts = ["Action=SendMessage", "MessageBody=$util.urlEncode($input.body)"]
    for number, (name, data_type, value) in enumerate(attributes, start=1):
        prefix = f"MessageAttribute.{number}"
        parts += [
            f"{prefix}.Name={name}",
            f"{prefix}.Value.DataType={data_type}",
            f"{prefix}.Value.StringValue={value}",
        ]
    return "&".join(parts)


# 2xx from SQS: the message is stored.
ACCEPTED_TEMPLATE = (
    "#set($result = $input.path('$.SendMessageResponse.SendMessageResult'))\n"
    '{"message_id": "$result.MessageId", "request_id": "$context.requestId"}'
)
# Any other answer (the default integration response): 500, except the two errors the body itself causes. With
# this template's fixed parameters, InvalidParameterValue can only mean the body plus its message attributes are over
# the SQS message size (tools/local/api.py answers the same 413 from resources.sqs_message_bytes).
QUEUE_ERROR_TEMPLATE = "\n".join(
    (
        "#set($code = $input.path('$.Error.Code'))",
        '#if($code == "InvalidParameterValue")',
        f"#set($context.responseOverride.status = {STATUS_BODY_TOO_LARGE})",
        f'{{"message": "Request Entity Too Large", "error": "{BODY_TOO_LARGE_ERROR}", '
        '"request_id": "$context.requestId"}',
        '#elseif($code == "InvalidMessageContents")',
        f"#set($context.responseOverride.status = {STATUS_QUEUE_REJECTED_BODY})",
        '{"message": "Invalid request body", "error": "the body contains characters the queue does not accept", '
        '"request_id": "$context.requestId"}',
        "#else",
        '{"message": "Internal server error: the event was not queued, retry", "request_id": "$context.requestId"}',
        "#end",
    )
)
QUEUE_UNAVAILABLE_TEMPLATE = (
    '{"message": "Service unavailable: the event was not queued, retry", "request_id": "$context.requestId"}'
)


def _error_body(error: str, detail: str = "") -> str:
    """A gateway-response JSON body; ``$context.error.messageString`` is already a quoted JSON string."""
    extra = f', "errors": ["{detail}"]' if detail else ""
    return f'{{"message": $context.error.messageString, "error": "{error}"{extra}, "request_id": "$context.requestId"}}'


# API Gateway's own answers, as JSON: (response type, HTTP status, machine-readable error, detail).
GATEWAY_RESPONSES: tuple[tuple[apigw.ResponseType, str, str, str], ...] = (
    (apigw.ResponseType.BAD_REQUEST_BODY, "400", "invalid_body", "$context.error.validationErrorString"),
    (apigw.ResponseType.BAD_REQUEST_PARAMETERS, "400", "invalid_parameters", "$context.error.validationErrorString"),
    (apigw.ResponseType.INVALID_API_KEY, "403", "invalid_api_key", ""),
    (apigw.ResponseType.ACCESS_DENIED, "403", "access_denied", ""),
    (apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN, "403", "missing_authentication_or_unknown_route", ""),
    (apigw.ResponseType.INVALID_SIGNATURE, "403", "invalid_signature", ""),
    (apigw.ResponseType.EXPIRED_TOKEN, "403", "expired_token", ""),
    (apigw.ResponseType.REQUEST_TOO_LARGE, "413", "request_too_large", ""),
    (apigw.ResponseType.UNSUPPORTED_MEDIA_TYPE, "415", "unsupported_media_type", ""),
    (apigw.ResponseType.THROTTLED, "429", "throttled", ""),
    (apigw.ResponseType.QUOTA_EXCEEDED, "429", "quota_exceeded", ""),
    (apigw.ResponseType.DEFAULT_4_XX, "", "client_error", ""),
    (apigw.ResponseType.DEFAULT_5_XX, "", "server_error", ""),
)

ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "integrationStatus": "$context.integration.status",
    "integrationLatency": "$context.integration.latency",
    "errorMessage": "$context.error.message",
    "errorType": "$context.error.responseType",
    "validationError": "$context.error.validationErrorString",
    "apiKeyId": "$context.identity.apiKeyId",
    "caller": "$context.identity.caller",
    "sourceIp": "$context.identity.sourceIp",
    "userAgent": "$context.identity.userAgent",
    "xrayTraceId": "$context.xrayTraceId",
}


class IngestApi(Construct):
    """The REST API in front of the ingest queue, with its usage plan and API key (``authMode=apiKey``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        config: PipelineConfig,
        ingest_queue: sqs.IQueue,
        schema_dir: Path = SCHEMA_DIR,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays[config.log_retention],
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{names.prefix}-ingest",
            description="App events from mobile backends -> the ingest queue (direct SQS integration)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Execution logging needs the account-level CloudWatch role; kept on stack deletion because it is
            # shared by every REST API of the account and region.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=config.stage,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FORMAT)),
                logging_level=apigw.MethodLoggingLevel[config.api_execution_log_level],
                data_trace_enabled=False,  # never log bodies: they carry device ids and IPs
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=config.throttle_rate_limit,
                throttling_burst_limit=config.throttle_burst_limit,
            ),
        )
        # RestApi adds an "Endpoint" output of its own; the stack publishes the URL once, as OUTPUT_API_URL.
        self.api.node.try_remove_child("Endpoint")
        # API Gateway writes execution logs to a group it names after the API and stage, created on first use
        # without a retention (kept for ever). Created here first, with the stack's retention; the stage waits
        # for it, so API Gateway finds it in place.
        self.execution_logs = logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=f"API-Gateway-Execution-Logs_{self.api.rest_api_id}/{config.stage}",
            retention=logs.RetentionDays[config.log_retention],
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api.deployment_stage.node.add_dependency(self.execution_logs)
        # API Gateway assumes this role to call SQS: SendMessage on the ingest queue, nothing else. The queues use
        # SSE-SQS, so no KMS permission is needed.
        self.integration_role = iam.Role(
            self,
            "SqsIntegrationRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway -> SendMessage to the ingest queue",
        )
        self.integration_role.add_to_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[ingest_queue.queue_arn])
        )
        self.validator = self.api.add_request_validator(
            "BodyValidator", validate_request_body=True, validate_request_parameters=True
        )
        schemas = {route: load_body_schema(route, schema_dir) for route in ROUTES}
        self.methods = [self._route(route, ingest_queue, schemas[route]) for route in ROUTES]
        self._add_gateway_responses()
        # Models and gateway responses are part of a deployment's snapshot, but CDK only re-deploys the stage when
        # a method changes: fold them into the deployment's identity so a new schema or error body goes live.
        deployment = self.api.latest_deployment
        assert deployment is not None  # RestApi(deploy=True), the default
        deployment.add_to_logical_id(
            {
                "models": schemas,
                "gatewayResponses": [
                    [kind.response_type, status, error, detail] for kind, status, error, detail in GATEWAY_RESPONSES
                ],
            }
        )
        self.api_key = self._add_usage_plan() if config.auth_mode == "apiKey" else None
        self._suppress_nag_findings()

    def _route(self, route: str, queue: sqs.IQueue, schema: dict[str, Any]) -> apigw.Method:
        resource = self.api.root.resource_for_path(ROUTE_PATHS[route])
        model_name = f"{route.capitalize()}Body"
        # CfnModel takes the generated schema as is (definitions, $ref); the typed JsonSchema class would need
        # every keyword translated.
        model = apigw.CfnModel(
            self,
            f"{model_name}Model",
            rest_api_id=self.api.rest_api_id,
            name=model_name,
            content_type=JSON,
            schema=schema,
            description=f"Request body of POST {ROUTE_PATHS[route]} (generated from the pydantic contract)",
        )
        integration = apigw.AwsIntegration(
            service="sqs",
            path=f"{Aws.ACCOUNT_ID}/{queue.queue_name}",
            integration_http_method="POST",
            options=apigw.IntegrationOptions(
                credentials_role=self.integration_role,
                passthrough_behavior=apigw.PassthroughBehavior.NEVER,
                request_parameters={"integration.request.header.Content-Type": "'application/x-www-form-urlencoded'"},
                request_templates={JSON: send_message_template(route)},
                integration_responses=[
                    apigw.IntegrationResponse(
                        selection_pattern=r"2\d{2}",
                        status_code=STATUS_ACCEPTED,
                        response_templates={JSON: ACCEPTED_TEMPLATE},
                    ),
                    apigw.IntegrationResponse(
                        selection_pattern=r"5\d{2}",
                        status_code=STATUS_QUEUE_UNAVAILABLE,
                        response_templates={JSON: QUEUE_UNAVAILABLE_TEMPLATE},
                    ),
                    # The default response (no selection pattern): everything else, 4xx included.
                    apigw.IntegrationResponse(
                        status_code=STATUS_QUEUE_FAILED,
                        response_templates={JSON: QUEUE_ERROR_TEMPLATE},
                    ),
                ],
            ),
        )
        iam_auth = self._config.auth_mode == "iam"
        return resource.add_method(
            "POST",
            integration,
            api_key_required=not iam_auth,
            authorization_type=apigw.AuthorizationType.IAM if iam_auth else apigw.AuthorizationType.NONE,
            request_validator=self.validator,
            request_models={JSON: apigw.Model.from_model_name(self, f"{model_name}Ref", model.ref)},
            method_responses=[
                apigw.MethodResponse(status_code=status, response_models={JSON: apigw.Model.EMPTY_MODEL})
                for status in (
                    STATUS_ACCEPTED,
                    STATUS_QUEUE_REJECTED_BODY,
                    STATUS_QUEUE_FAILED,
                    STATUS_QUEUE_UNAVAILABLE,
                )
            ],
        )

    def _add_gateway_responses(self) -> None:
        for response_type, status, error, detail in GATEWAY_RESPONSES:
            self.api.add_gateway_response(
                f"{error.title().replace('_', '')}Response",
                type=response_type,
                status_code=status or None,
                templates={JSON: _error_body(error, detail)},
            )

    def _add_usage_plan(self) -> apigw.IApiKey:
        """One API key in a usage plan that throttles (and optionally caps) it on this stage."""
        config = self._config
        plan = self.api.add_usage_plan(
            "UsagePlan",
            name=f"{self.api.rest_api_name}-default",
            description="Throttle and quota of the mobile backends' API key",
            throttle=apigw.ThrottleSettings(
                rate_limit=config.throttle_rate_limit, burst_limit=config.throttle_burst_limit
            ),
            quota=apigw.QuotaSettings(limit=config.quota_limit, period=apigw.Period[config.quota_period])
            if config.quota_limit
            else None,
        )
        plan.add_api_stage(stage=self.api.deployment_stage)
        key = apigw.ApiKey(
            self,
            "ApiKey",
            description="API key of the mobile backends (value: `aws apigateway get-api-key --include-value`)",
        )
        plan.add_api_key(key)
        return key

    def _suppress_nag_findings(self) -> None:
        """cdk-nag findings that are decisions, each scoped to the resource it is about."""
        for method in self.methods:
            suppressions = [
                NagPackSuppression(
                    id="AwsSolutions-COG4",
                    reason="Callers are server-side mobile backends, not end users: no Cognito user pool. They "
                    "authenticate with an API key (usage plan) or, with authMode=iam, with SigV4.",
                )
            ]
            if self._config.auth_mode == "apiKey":
                suppressions.append(
                    NagPackSuppression(
                        id="AwsSolutions-APIG4",
                        reason="authMode=apiKey: every method requires an API key tied to a throttled usage plan; "
                        "deployments whose backends sign requests use authMode=iam (IAM authorization).",
                    )
                )
            NagSuppressions.add_resource_suppressions(method, suppressions)
        NagSuppressions.add_resource_suppressions(
            self.api,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM4",
                    reason="The account-level API Gateway CloudWatch role uses the AWS-managed "
                    "AmazonAPIGatewayPushToCloudWatchLogs policy, the documented setup for execution logging.",
                    applies_to=[
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                    ],
                ),
                NagPackSuppression(
                    id="AwsSolutions-APIG3",
                    reason="No WAF by default: callers are known server backends with API keys, throttled per key "
                    "and per stage. A web ACL can be associated with the stage by the operator if needed.",
                ),
            ],
            apply_to_children=True,
        )

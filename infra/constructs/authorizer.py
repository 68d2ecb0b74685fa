"""The ingest API's API key authorizer: one small Lambda (``functions/authorizer``) behind two REQUEST authorizers.

Why: a REST API reads its API keys either from the ``x-api-key`` header or from a Lambda authorizer
(``apiKeySource``, API-wide). The Segment and RudderStack libraries send the key as HTTP Basic auth, so the API
takes its keys from this authorizer on every path: one authorizer reads ``x-api-key`` (the native paths), the other
``Authorization`` (the Segment paths). It returns the key as ``usageIdentifierKey``; API Gateway itself checks it
against the usage plan's keys and applies their throttle and quota, as before.

Cost: API Gateway caches the answer per header value for ``authorizerCacheSeconds`` (default 300), so the Lambda
runs once per key per cache period and per API Gateway cache, not per request (docs/deploy.md: figures). A missing
header never reaches it (API Gateway answers at once, ``403`` here).

The function: standard library only (its asset has no dependencies, ``infra/bundling.py``), 128 MB, arm64, active
tracing like the other functions, its own role that may only write its own log group (and X-Ray).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from functions.authorizer.config import AuthorizerConfig
from functions.names import API_KEY_HEADER, BASIC_AUTH_HEADER, FUNCTION_AUTHORIZER, HANDLER_AUTHORIZER, INGEST_PATHS
from infra.bundling import LambdaAssetBuilder
from infra.config import PipelineConfig
from infra.constructs.functions import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, log_group_and_role
from infra.resources import ResourceNames

AUTHORIZER_MEMORY_MB = 128  # base64 and a dict: the smallest size is plenty
AUTHORIZER_TIMEOUT_S = 5
# The header each authorizer reads, as API Gateway names it in an identity source.
IDENTITY_HEADERS = {API_KEY_HEADER: "x-api-key", BASIC_AUTH_HEADER: "Authorization"}


class ApiKeyAuthorizer(Construct):
    """The authorizer function and its two REQUEST authorizers (``by_header``: header -> authorizer)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        config: PipelineConfig,
        assets: LambdaAssetBuilder,
    ) -> None:
        super().__init__(scope, construct_id)
        function_name = names.function(FUNCTION_AUTHORIZER)
        self.asset_path = assets.asset_dir(FUNCTION_AUTHORIZER)
        self.log_group, self.role = log_group_and_role(
            self, function_name, config, f"{function_name}: writes its own log group, nothing else"
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler=HANDLER_AUTHORIZER,
            code=lambda_.Code.from_asset(str(self.asset_path)),
            memory_size=AUTHORIZER_MEMORY_MB,
            timeout=Duration.seconds(AUTHORIZER_TIMEOUT_S),
            role=self.role,
            environment=AuthorizerConfig.for_paths(INGEST_PATHS, config.log_level).environment(),
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,  # its (rare) calls show in the API's X-Ray traces
        )
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Active X-Ray tracing: xray:PutTraceSegments/PutTelemetryRecords support no resource-level "
                    "permissions, AWS requires Resource '*'. The only other statement is its own log group.",
                    applies_to=["Resource::*"],
                )
            ],
            apply_to_children=True,
        )
        ttl = Duration.seconds(config.authorizer_cache_seconds)
        self.by_header = {
            header: apigw.RequestAuthorizer(
                self,
                f"{'ApiKeyHeader' if header == API_KEY_HEADER else 'BasicAuth'}Authorizer",
                handler=self.function,
                identity_sources=[apigw.IdentitySource.header(name)],
                results_cache_ttl=ttl,
                authorizer_name=f"{names.prefix}-{'x-api-key' if header == API_KEY_HEADER else 'basic-auth'}",
            )
            for header, name in IDENTITY_HEADERS.items()
        }

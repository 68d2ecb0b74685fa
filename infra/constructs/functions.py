"""The two Lambda functions, their roles (least privilege, written out) and their SQS event sources.

- enricher: consumes the ingest queue; sends to the delivery queue, the ingest DLQ and (only to re-queue, with a
  delay, an install whose Apple AdServices attribution is not ready yet) the ingest queue; reads and writes the
  device-profile table.
- deliverer: consumes the delivery queue with a maximum concurrency (so a backlog cannot stampede Kochava into
  429s); sends to the delivery DLQ only; reads and writes the idempotency table and the delivery-state table (the
  Kochava circuit breaker, GetItem / UpdateItem only).

Both event sources have a maximum concurrency, so a flood on one side cannot take every Lambda slot of the account
from the other.

No role gets a managed policy or a ``*`` action: each permission is one statement on one resource, except the
X-Ray write actions CDK adds for active tracing, which AWS only supports on ``*`` resources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from functions.names import (
    ENV_ADSERVICES_RESOLVE,
    ENV_ADSERVICES_URL,
    ENV_DELIVERER_MAX_WORKERS,
    ENV_DELIVERY_DLQ_URL,
    ENV_DELIVERY_QUEUE_URL,
    ENV_DELIVERY_STATE_TABLE,
    ENV_EVENT_NAME_MAP,
    ENV_FILTERED_EVENTS,
    ENV_IDEMPOTENCY_TABLE,
    ENV_INGEST_DLQ_URL,
    ENV_INGEST_QUEUE_URL,
    ENV_KOCHAVA_APP_ID_ANDROID,
    ENV_KOCHAVA_APP_ID_IOS,
    ENV_KOCHAVA_APP_IDS_BY_BUNDLE,
    ENV_KOCHAVA_IDENTITYLINK_URL,
    ENV_KOCHAVA_URL,
    ENV_MAX_RECEIVE_COUNT,
    ENV_POWERTOOLS_LOG_LEVEL,
    ENV_POWERTOOLS_METRICS_NAMESPACE,
    ENV_POWERTOOLS_SERVICE_NAME,
    ENV_PROFILE_TABLE,
    ENV_PROFILE_TTL_DAYS,
    FUNCTION_DELIVERER,
    FUNCTION_ENRICHER,
    FUNCTION_STATIC_ENV,
    HANDLER_DELIVERER,
    HANDLER_ENRICHER,
)
from infra.bundling import LambdaAssetBuilder
from infra.config import PipelineConfig
from infra.constructs.queues import PipelineQueues, QueueWithDlq
from infra.constructs.tables import PipelineTables
from infra.resources import ResourceNames

# The newest Python runtime aws-cdk-lib 2.275 knows; the bundler builds wheels for the same version.
LAMBDA_RUNTIME = lambda_.Runtime.PYTHON_3_14
LAMBDA_ARCHITECTURE = lambda_.Architecture.ARM_64
ENRICHER_MEMORY_MB = 512  # pydantic validation of batches of up to 100 events
DELIVERER_MEMORY_MB = 512  # a thread pool of HTTP requests; more memory also means more CPU for TLS

# What each function may do to a table: no Scan/Query; the profile store reads and writes in batches
# (BatchGetItem / BatchWriteItem) and never deletes; idempotency is item by item.
# Exactly the calls functions/adapters/profiles_dynamodb.py makes (tests/infra/test_iam.py scans the code).
PROFILE_TABLE_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:BatchWriteItem")
# What the deliverer's Kochava breaker store calls (functions/adapters/breaker_dynamodb.py).
DELIVERY_STATE_TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem")
# What Powertools idempotency (DynamoDBPersistenceLayer) calls.
IDEMPOTENCY_TABLE_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
SEND_MESSAGE_ACTION = "sqs:SendMessage"  # also authorizes SendMessageBatch


def runtime_python_version(runtime: lambda_.Runtime) -> str:
    """``python3.14`` -> ``3.14``: the version pip builds wheels for."""
    return runtime.name.removeprefix("python")


@dataclass(frozen=True)
class FunctionSpec:
    """What differs between the two functions."""

    name: str  # short name: Powertools service name and the folder in `functions/`
    handler: str
    queue: QueueWithDlq  # the queue it consumes
    memory_mb: int
    environment: Mapping[str, str]
    max_concurrency: int | None = None


def log_group_and_role(
    scope: Construct, function_name: str, config: PipelineConfig, description: str
) -> tuple[logs.LogGroup, iam.Role]:
    """A function's own log group (kept ``logRetentionDays``) and an execution role that may write to it only: an
    explicit role instead of the default one with the AWSLambdaBasicExecutionRole managed policy, which may write
    to any log group."""
    log_group = logs.LogGroup(
        scope,
        "Logs",
        log_group_name=f"/aws/lambda/{function_name}",
        retention=logs.RetentionDays[config.log_retention],
        removal_policy=RemovalPolicy.DESTROY,
    )
    role = iam.Role(scope, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=description)
    log_group.grant_write(role)
    return log_group, role


class PipelineFunction(Construct):
    """One Lambda function with its own role and log group, consuming one SQS queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        spec: FunctionSpec,
        names: ResourceNames,
        config: PipelineConfig,
        assets: LambdaAssetBuilder,
    ) -> None:
        super().__init__(scope, construct_id)
        function_name = names.function(spec.name)
        self.asset_path = assets.asset_dir(spec.name)  # the folder deployed as the function's code
        self.log_group, self.role = log_group_and_role(
            self, function_name, config, f"{function_name}: least-privilege execution role"
        )
        environment = {
            ENV_POWERTOOLS_SERVICE_NAME: spec.name,
            ENV_POWERTOOLS_METRICS_NAMESPACE: names.metrics_namespace,
            **FUNCTION_STATIC_ENV,
            ENV_POWERTOOLS_LOG_LEVEL: config.log_level,
            ENV_MAX_RECEIVE_COUNT: str(spec.queue.max_receive_count),
            **spec.environment,
        }
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            runtime=LAMBDA_RUNTIME,
            architecture=LAMBDA_ARCHITECTURE,
            handler=spec.handler,
            code=lambda_.Code.from_asset(str(self.asset_path)),
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.queue.spec.consumer_timeout_s),
            role=self.role,
            environment=environment,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            tracing=lambda_.Tracing.ACTIVE,
        )
        # The event source adds ReceiveMessage, DeleteMessage, ChangeMessageVisibility, GetQueueAttributes and
        # GetQueueUrl on this queue only.
        self.function.add_event_source(
            event_sources.SqsEventSource(
                spec.queue.queue,
                batch_size=spec.queue.spec.batch_size,
                max_batching_window=Duration.seconds(spec.queue.spec.batching_window_s),
                report_batch_item_failures=True,
                max_concurrency=spec.max_concurrency,
            )
        )
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Active X-Ray tracing: xray:PutTraceSegments/PutTelemetryRecords support no resource-level "
                    "permissions, AWS requires Resource '*'. Every other statement names one resource.",
                    applies_to=["Resource::*"],
                )
            ],
            apply_to_children=True,
        )

    def allow(self, actions: tuple[str, ...] | str, *resource_arns: str) -> None:
        """Grant ``actions`` on exactly ``resource_arns``."""
        action_list = [actions] if isinstance(actions, str) else list(actions)
        self.role.add_to_policy(iam.PolicyStatement(actions=action_list, resources=list(resource_arns)))


class PipelineFunctions(Construct):
    """The enricher and the deliverer, wired to the queues and tables with least-privilege permissions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        config: PipelineConfig,
        queues: PipelineQueues,
        tables: PipelineTables,
        assets: LambdaAssetBuilder | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        assets = assets or LambdaAssetBuilder(runtime_python_version(LAMBDA_RUNTIME))
        kochava = kochava_environment(config)

        self.enricher = PipelineFunction(
            self,
            "Enricher",
            names=names,
            config=config,
            assets=assets,
            spec=FunctionSpec(
                name=FUNCTION_ENRICHER,
                handler=HANDLER_ENRICHER,
                queue=queues.ingest,
                memory_mb=ENRICHER_MEMORY_MB,
                max_concurrency=config.enricher_max_concurrency,
                environment={
                    **kochava,
                    ENV_INGEST_QUEUE_URL: queues.ingest.queue.queue_url,
                    ENV_INGEST_DLQ_URL: queues.ingest.dlq.queue_url,
                    ENV_DELIVERY_QUEUE_URL: queues.delivery.queue.queue_url,
                    ENV_PROFILE_TABLE: tables.profiles.table_name,
                    ENV_PROFILE_TTL_DAYS: str(config.profile_ttl_days),
                },
            ),
        )
        self.enricher.allow(SEND_MESSAGE_ACTION, queues.delivery.queue.queue_arn, queues.ingest.dlq.queue_arn)
        # Deliberate amendment to "the enricher writes only to the delivery queue and the ingest DLQ": an install
        # whose Apple AdServices attribution is not ready yet (Apple answers 404) is re-queued to the ingest queue
        # with a delay (attribute `adservices_attempt`, docs/DESIGN.md), so the rest of the batch is not blocked.
        self.enricher.allow(SEND_MESSAGE_ACTION, queues.ingest.queue.queue_arn)
        self.enricher.allow(PROFILE_TABLE_ACTIONS, tables.profiles.table_arn)

        self.deliverer = PipelineFunction(
            self,
            "Deliverer",
            names=names,
            config=config,
            assets=assets,
            spec=FunctionSpec(
                name=FUNCTION_DELIVERER,
                handler=HANDLER_DELIVERER,
                queue=queues.delivery,
                memory_mb=DELIVERER_MEMORY_MB,
                max_concurrency=config.deliverer_max_concurrency,
                environment={
                    **kochava,
                    # Its own source queue, for ChangeMessageVisibility (back-off) only: it cannot send to it.
                    ENV_DELIVERY_QUEUE_URL: queues.delivery.queue.queue_url,
                    ENV_DELIVERY_DLQ_URL: queues.delivery.dlq.queue_url,
                    ENV_IDEMPOTENCY_TABLE: tables.idempotency.table_name,
                    ENV_DELIVERY_STATE_TABLE: tables.delivery_state.table_name,
                    ENV_DELIVERER_MAX_WORKERS: str(config.deliverer_max_workers),
                },
            ),
        )
        self.deliverer.allow(SEND_MESSAGE_ACTION, queues.delivery.dlq.queue_arn)
        self.deliverer.allow(IDEMPOTENCY_TABLE_ACTIONS, tables.idempotency.table_arn)
        self.deliverer.allow(DELIVERY_STATE_TABLE_ACTIONS, tables.delivery_state.table_arn)

    @property
    def all(self) -> tuple[PipelineFunction, ...]:
        """Both functions, enricher first."""
        return (self.enricher, self.deliverer)


def kochava_environment(config: PipelineConfig) -> dict[str, str]:
    """The Kochava / AdServices settings both functions read with ``Settings.from_env``.

    Only configured values are set: an absent variable means the default in ``functions/pipeline/settings.py``,
    so the defaults live in one place.
    """
    values = {
        ENV_KOCHAVA_APP_ID_IOS: config.kochava_app_id_ios,
        ENV_KOCHAVA_APP_ID_ANDROID: config.kochava_app_id_android,
        ENV_KOCHAVA_APP_IDS_BY_BUNDLE: json.dumps(config.kochava_app_ids_by_bundle, sort_keys=True)
        if config.kochava_app_ids_by_bundle
        else "",
        ENV_KOCHAVA_URL: config.kochava_url,
        ENV_KOCHAVA_IDENTITYLINK_URL: config.kochava_identitylink_url,
        ENV_EVENT_NAME_MAP: json.dumps(config.event_name_map, sort_keys=True) if config.event_name_map else "",
        ENV_ADSERVICES_URL: config.adservices_url,
        ENV_ADSERVICES_RESOLVE: "true" if config.adservices_resolve else "false",
    }
    environment = {name: value for name, value in values.items() if value}
    if config.filtered_events is not None:  # an empty list is meaningful: filter nothing
        environment[ENV_FILTERED_EVENTS] = config.filtered_events
    return environment

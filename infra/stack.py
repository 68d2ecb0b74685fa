"""The pipeline stack: composes one construct per concern and publishes the outputs tools.dlq reads.

API Gateway --SendMessage--> ingest queue --> enricher --> delivery queue --> deliverer --> Kochava
                               + DLQ                         + DLQ
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from functions.names import ENV_REQUIRE_BOUND_KEYS, ENV_SOURCE_APPS
from infra.bundling import LambdaAssetBuilder
from infra.config import PipelineConfig
from infra.constructs.authorizer import ApiKeyAuthorizer
from infra.constructs.functions import LAMBDA_RUNTIME, PipelineFunctions, runtime_python_version
from infra.constructs.ingest_api import IngestApi
from infra.constructs.monitoring import PipelineMonitoring
from infra.constructs.queues import PipelineQueues
from infra.constructs.tables import PipelineTables
from infra.resources import (
    OUTPUT_API_KEY_ID,
    OUTPUT_API_URL,
    OUTPUT_DELIVERY_DLQ_URL,
    OUTPUT_DELIVERY_QUEUE_URL,
    OUTPUT_INGEST_DLQ_URL,
    OUTPUT_INGEST_QUEUE_URL,
    OUTPUT_SOURCE_API_KEY_IDS,
    ResourceNames,
)


class PipelineStack(Stack):
    """One stage of the Kochava event pipeline."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        assets: LambdaAssetBuilder | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        names = ResourceNames(stage=config.stage)
        self.names = names
        assets = assets or LambdaAssetBuilder(runtime_python_version(LAMBDA_RUNTIME))
        self.queues = PipelineQueues(
            self,
            "Queues",
            names=names,
            max_receive_count=config.max_receive_count,
            delivery_max_receive_count=config.delivery_max_receive_count,
        )
        self.tables = PipelineTables(
            self,
            "Tables",
            names=names,
            retain=config.retain_tables,
            profile_backup_days=config.profile_backup_days,
        )
        self.functions = PipelineFunctions(
            self, "Functions", names=names, config=config, queues=self.queues, tables=self.tables, assets=assets
        )
        # API keys are read by a cached authorizer (x-api-key or HTTP Basic auth); none with IAM auth.
        self.authorizer = (
            ApiKeyAuthorizer(self, "ApiKeyAuthorizer", names=names, config=config, assets=assets)
            if config.auth_mode == "apiKey"
            else None
        )
        self.ingest_api = IngestApi(
            self,
            "IngestApi",
            names=names,
            config=config,
            ingest_queue=self.queues.ingest.queue,
            authorizer=self.authorizer,
        )
        source_apps = self.ingest_api.source_apps_env()
        if source_apps is not None:  # keys bound to apps: the enricher dead-letters other apps' events
            self.functions.enricher.function.add_environment(ENV_SOURCE_APPS, source_apps)
            required = "true" if config.require_bound_keys else "false"
            self.functions.enricher.function.add_environment(ENV_REQUIRE_BOUND_KEYS, required)
        self.monitoring = PipelineMonitoring(
            self,
            "Monitoring",
            names=names,
            config=config,
            queues=self.queues.all,
            functions=self.functions.all,
            api=self.ingest_api.api,
        )

        outputs = {
            OUTPUT_API_URL: (
                self.ingest_api.api.url,
                "Base URL of the ingest API (POST v1/events, v1/segment; Segment HTTP API: v1/batch, v1/track...)",
            ),
            OUTPUT_INGEST_QUEUE_URL: (self.queues.ingest.queue.queue_url, "Ingest queue (API Gateway -> enricher)"),
            OUTPUT_INGEST_DLQ_URL: (self.queues.ingest.dlq.queue_url, "Ingest DLQ (tools.dlq)"),
            OUTPUT_DELIVERY_QUEUE_URL: (
                self.queues.delivery.queue.queue_url,
                "Delivery queue (enricher -> deliverer)",
            ),
            OUTPUT_DELIVERY_DLQ_URL: (self.queues.delivery.dlq.queue_url, "Delivery DLQ (tools.dlq)"),
        }
        if self.ingest_api.api_key is not None:
            outputs[OUTPUT_API_KEY_ID] = (
                self.ingest_api.api_key.key_id,
                "API key id; its value: aws apigateway get-api-key --include-value --api-key <id>",
            )
        if self.ingest_api.bound_keys:
            ids = ", ".join(f'"{name}": "{key.key_id}"' for name, key in self.ingest_api.bound_keys.items())
            outputs[OUTPUT_SOURCE_API_KEY_IDS] = ("{" + ids + "}", "API key ids of the sourceApps keys, by name")
        for key, (value, description) in outputs.items():
            CfnOutput(self, key, value=value, description=description)

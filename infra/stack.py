"""The pipeline stack: composes one construct per concern and publishes the outputs tools.dlq reads.

API Gateway --SendMessage--> ingest queue --> enricher --> delivery queue --> deliverer --> Kochava
                               + DLQ                         + DLQ
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from infra.bundling import LambdaAssetBuilder
from infra.config import PipelineConfig
from infra.constructs.functions import PipelineFunctions
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
        self.ingest_api = IngestApi(
            self, "IngestApi", names=names, config=config, ingest_queue=self.queues.ingest.queue
        )
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
            OUTPUT_API_URL: (self.ingest_api.api.url, "Base URL of the ingest API (POST v1/events, v1/segment)"),
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
        for key, (value, description) in outputs.items():
            CfnOutput(self, key, value=value, description=description)

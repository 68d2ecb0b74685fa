"""The pipeline's DynamoDB tables: the deliverer's idempotency records and Kochava breaker, the device profiles.

Both are on-demand, encrypted at rest (AWS-owned key, the DynamoDB default), with point-in-time recovery and a TTL
attribute; keys and TTL attribute names come from :mod:`infra.resources`.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from functions.names import DELIVERY_STATE_TABLE, IDEMPOTENCY_TABLE, PROFILE_TABLE, TableSpec
from infra.resources import ResourceNames


class PipelineTables(Construct):
    """``idempotency`` (Powertools idempotency layout), ``device-profiles`` and ``delivery-state``."""

    def __init__(self, scope: Construct, construct_id: str, *, names: ResourceNames, retain: bool) -> None:
        super().__init__(scope, construct_id)
        removal_policy = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.idempotency = self._table("Idempotency", IDEMPOTENCY_TABLE, names, removal_policy)
        self.profiles = self._table("DeviceProfiles", PROFILE_TABLE, names, removal_policy)
        # The deliverer's Kochava circuit breaker and per-message attempt counts (short-lived: nothing to retain).
        self.delivery_state = self._table("DeliveryState", DELIVERY_STATE_TABLE, names, RemovalPolicy.DESTROY)

    def _table(
        self, label: str, spec: TableSpec, names: ResourceNames, removal_policy: RemovalPolicy
    ) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            label,
            table_name=names.table(spec),
            partition_key=dynamodb.Attribute(name=spec.partition_key, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=spec.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal_policy,
        )

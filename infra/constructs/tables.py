"""The pipeline's DynamoDB tables: the deliverer's idempotency records and Kochava breaker, the device profiles.

Both are on-demand, encrypted at rest (AWS-owned key, the DynamoDB default), with point-in-time recovery and a TTL
attribute; keys and TTL attribute names come from :mod:`functions.names`. The device profiles hold personal data:
their recovery period is the ``profileBackupDays`` context key (an erase cannot reach a backup, docs/privacy.md);
the idempotency records hold none and keep DynamoDB's longest, 35 days.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from functions.names import DELIVERY_STATE_TABLE, IDEMPOTENCY_TABLE, PROFILE_TABLE, TableSpec
from infra.resources import ResourceNames

MAX_RECOVERY_DAYS = 35  # DynamoDB's point-in-time recovery keeps at most 35 days


class PipelineTables(Construct):
    """``idempotency`` (Powertools idempotency layout), ``device-profiles`` and ``delivery-state``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        retain: bool,
        profile_backup_days: int = MAX_RECOVERY_DAYS,
    ) -> None:
        super().__init__(scope, construct_id)
        removal_policy = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.idempotency = self._table("Idempotency", IDEMPOTENCY_TABLE, names, removal_policy, MAX_RECOVERY_DAYS)
        self.profiles = self._table("DeviceProfiles", PROFILE_TABLE, names, removal_policy, profile_backup_days)
        # The deliverer's Kochava circuit breaker and per-message attempt counts: short-lived, no personal data,
        # nothing to retain or recover beyond a day.
        self.delivery_state = self._table("DeliveryState", DELIVERY_STATE_TABLE, names, RemovalPolicy.DESTROY, 1)

    def _table(
        self, label: str, spec: TableSpec, names: ResourceNames, removal_policy: RemovalPolicy, recovery_days: int
    ) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            label,
            table_name=names.table(spec),
            partition_key=dynamodb.Attribute(name=spec.partition_key, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=spec.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True, recovery_period_in_days=recovery_days
            ),
            removal_policy=removal_policy,
        )

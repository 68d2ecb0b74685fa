"""Operations: CloudWatch alarms to an SNS topic (email subscription when configured) and a dashboard.

Alarms (all notify on ALARM and on OK):
- each DLQ holds >= 1 visible message (something needs on-call: ``python -m tools.dlq list``);
- each queue's oldest message is older than ``queueAgeAlarmSeconds`` (the consumer is stuck or too slow);
- each queue's and each DLQ's oldest message has lived 3/4 of the queue's retention (it will expire unless
  something is done: long before that the age alarm above has fired);
- Kochava outage: the deliverer's circuit breaker is open (``KochavaBreakerOpen``); it stays in ALARM while
  any invocation saw it open in the last 15 minutes, so it fires once per outage, not once per event;
- each function reported >= 1 error in 5 minutes;
- the API answered >= 1 5xx in 5 minutes (the ingest queue refused or failed a SendMessage).

The topic is encrypted with a customer-managed KMS key (rotation on). A topic policy in CloudFormation replaces
SNS's default one, so both the topic policy and the key policy say it: ``cloudwatch.amazonaws.com`` may publish
(``sns:Publish``; ``kms:GenerateDataKey*``, ``kms:Decrypt``) when the request comes from this account
(``aws:SourceAccount``) and from one of this stage's alarms (``aws:SourceArn`` like
``arn:<partition>:cloudwatch:<region>:<account>:alarm:<prefix>-*``, every alarm being named ``<prefix>-<label>``).
``tests/infra/test_alarm_delivery.py`` walks every alarm action to its topic, policy and key.

The dashboard shows the AWS metrics (API, queues, Lambda) and the Lambdas' own EMF metrics: namespace
``ResourceNames.metrics_namespace`` (``KochavaPipeline/<stage>``), dimension ``service`` = the function's short
name (its ``POWERTOOLS_SERVICE_NAME``), names from ``functions/enricher/metrics.py`` and
``functions/deliverer/metrics.py``; the per-reason counts are graphed with a ``SEARCH`` expression, so a new
reason shows up without a deploy.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from functions.deliverer import metrics as deliverer_metrics
from functions.enricher import metrics as enricher_metrics
from functions.names import FUNCTION_DELIVERER, FUNCTION_ENRICHER
from infra.config import PipelineConfig
from infra.constructs.functions import PipelineFunction
from infra.constructs.queues import QueueWithDlq
from infra.resources import ResourceNames

ALARM_PERIOD = Duration.minutes(5)
DLQ_PERIOD = Duration.minutes(1)
DASHBOARD_WIDGET_WIDTH = 8
EMF_PERIOD = Duration.minutes(5)
# An alarm on the oldest message's age fires when it has lived this share of its queue's retention.
RETENTION_ALARM_SHARE = 0.75
# The Kochava outage alarm looks at this many 5-minute periods: held records come back every 10-11 minutes
# (functions/pipeline/breaker.py), so an outage never leaves 15 minutes without an invocation that saw it open.
OUTAGE_ALARM_PERIODS = 3
# The EMF dimension Powertools puts on every metric of a function (Metrics(service=...)).
SERVICE_DIMENSION = "service"

# The Lambdas' own metrics on the dashboard, one graph each: (widget title, metric names), all counts (Sum).
ENRICHER_WIDGETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Enricher: events",
        (
            enricher_metrics.EVENTS_RECEIVED,
            enricher_metrics.EVENTS_FORWARDED,
            enricher_metrics.EVENTS_FILTERED,
            enricher_metrics.EVENTS_REJECTED,
        ),
    ),
    (
        "Enricher: AdServices",
        (
            enricher_metrics.ADSERVICES_TOKEN_EXPIRED,
            enricher_metrics.ADSERVICES_RESOLVED,
            enricher_metrics.ADSERVICES_REQUEUED,
            enricher_metrics.ADSERVICES_NOT_READY,
            enricher_metrics.ADSERVICES_INVALID,
            enricher_metrics.ADSERVICES_UNAVAILABLE,
            enricher_metrics.ADSERVICES_DEVELOPER_MODE,
            enricher_metrics.ADSERVICES_DEFERRED,
        ),
    ),
    (
        "Enricher: profiles, SQS retries",
        (
            enricher_metrics.PROFILE_FILLED,
            enricher_metrics.PROFILE_UPDATED,
            enricher_metrics.PROFILE_WRITE_FAILED,
            enricher_metrics.PROFILE_READ_FAILED,
            enricher_metrics.SEND_RETRIES,
            enricher_metrics.HANDOFF_BACKOFFS,
        ),
    ),
)
DELIVERER_WIDGETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Deliverer: outcomes",
        (
            deliverer_metrics.DELIVERED,
            deliverer_metrics.DUPLICATES_SKIPPED,
            deliverer_metrics.TRANSIENT_FAILURES,
            deliverer_metrics.DELIVERY_ERRORS,
        ),
    ),
    (
        "Deliverer: Kochava retries, AdServices token stripped",
        (deliverer_metrics.KOCHAVA_HTTP_RETRIES, deliverer_metrics.TOKEN_STRIPPED_AT_SEND),
    ),
    (
        "Deliverer: Kochava breaker (outages)",
        (
            deliverer_metrics.BREAKER_OPEN,
            deliverer_metrics.BREAKER_OPENED,
            deliverer_metrics.BREAKER_CLOSED,
            deliverer_metrics.KOCHAVA_PROBES,
            deliverer_metrics.DELIVERIES_HELD,
        ),
    ),
)
# Per-reason metrics: (widget title, service, metric name, reason dimension).
BY_REASON_WIDGETS: tuple[tuple[str, str, str, str], ...] = (
    (
        "Enricher: rejected by reason",
        FUNCTION_ENRICHER,
        enricher_metrics.EVENTS_REJECTED,
        enricher_metrics.REJECTED_REASON_DIMENSION,
    ),
    (
        "Deliverer: dead-lettered by reason",
        FUNCTION_DELIVERER,
        deliverer_metrics.DEAD_LETTERED,
        deliverer_metrics.DEAD_LETTERED_REASON_DIMENSION,
    ),
)


def emf_metric(namespace: str, service: str, name: str) -> cloudwatch.Metric:
    """A count the Lambda ``service`` emits through Powertools EMF (summed per period)."""
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map={SERVICE_DIMENSION: service},
        statistic="Sum",
        period=EMF_PERIOD,
        label=name,
    )


def alarm_arn_pattern(prefix: str) -> str:
    """The ARN of every alarm of this stage (all are named ``<prefix>-<label>``), for ``aws:SourceArn``."""
    return f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:{prefix}-*"


def alarm_publish_conditions(prefix: str) -> dict[str, dict[str, str]]:
    """Only this account's alarms of this stage (confused-deputy protection for the CloudWatch principal)."""
    return {
        "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
        "ArnLike": {"aws:SourceArn": alarm_arn_pattern(prefix)},
    }


def by_reason(namespace: str, service: str, name: str, dimension: str) -> cloudwatch.MathExpression:
    """Every reason of a per-reason count, one line each (a SEARCH: reasons are not listed in the stack)."""
    schema = f"{{{namespace},{SERVICE_DIMENSION},{dimension}}}"
    query = f'{schema} MetricName="{name}" {SERVICE_DIMENSION}="{service}"'
    search = f"SEARCH('{query}', 'Sum', {int(EMF_PERIOD.to_seconds())})"
    return cloudwatch.MathExpression(expression=search, using_metrics={}, label="", period=EMF_PERIOD)


class PipelineMonitoring(Construct):
    """Alarms, their topic and the dashboard of one pipeline stage."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        config: PipelineConfig,
        queues: tuple[QueueWithDlq, ...],
        functions: tuple[PipelineFunction, ...],
        api: apigw.RestApi,
    ) -> None:
        super().__init__(scope, construct_id)
        self._prefix = names.prefix
        self._metrics_namespace = names.metrics_namespace
        self.topic_key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"{names.prefix}: encrypts the alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        self.topic_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions=alarm_publish_conditions(names.prefix),
            )
        )
        self.topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=f"{names.prefix}-alarms",
            display_name=f"{names.prefix} pipeline alarms",
            master_key=self.topic_key,
            enforce_ssl=True,
        )
        # The topic policy CloudFormation writes replaces SNS's default one: without this, alarms cannot publish.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions=alarm_publish_conditions(names.prefix),
            )
        )
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))

        self.alarms: list[cloudwatch.Alarm] = []
        for pair in queues:
            self._dlq_alarm(pair)
            self._age_alarm(pair, config.queue_age_alarm_seconds)
            self._retention_alarms(pair)
        self._kochava_outage_alarm()
        for function in functions:
            self._alarm(
                f"{function.node.id}Errors",
                function.function.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
                threshold=1,
                description=f"{function.function.function_name}: invocation errors (see its log group)",
            )
        self._alarm(
            "Api5xx",
            api.metric_server_error(period=ALARM_PERIOD, statistic="Sum"),
            threshold=1,
            description="Ingest API answered 5xx: SendMessage to the ingest queue failed (access logs: "
            "integrationStatus)",
        )
        for alarm in self.alarms:
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
            alarm.add_ok_action(cloudwatch_actions.SnsAction(self.topic))
        self.dashboard = self._dashboard(queues, functions, api)

    def _alarm(
        self,
        label: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
    ) -> None:
        self.alarms.append(
            cloudwatch.Alarm(
                self,
                label,
                alarm_name=f"{self._prefix}-{label}",
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                evaluation_periods=evaluation_periods,
                datapoints_to_alarm=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )

    def _dlq_alarm(self, pair: QueueWithDlq) -> None:
        label = pair.spec.key.capitalize()
        self._alarm(
            f"{label}DlqNotEmpty",
            pair.dlq.metric_approximate_number_of_messages_visible(period=DLQ_PERIOD, statistic="Maximum"),
            threshold=1,
            description=f"{pair.dlq.queue_name} holds messages: inspect and replay with `python -m tools.dlq`",
        )

    def _age_alarm(self, pair: QueueWithDlq, max_age_s: int) -> None:
        label = pair.spec.key.capitalize()
        self._alarm(
            f"{label}QueueOldestMessage",
            pair.queue.metric_approximate_age_of_oldest_message(period=ALARM_PERIOD, statistic="Maximum"),
            threshold=max_age_s,
            description=f"{pair.queue.queue_name}: oldest message older than {max_age_s} s (consumer stuck or slow)",
        )

    def _retention_alarms(self, pair: QueueWithDlq) -> None:
        label = pair.spec.key.capitalize()
        for queue, kind, retention_s in (
            (pair.queue, "Queue", pair.spec.retention_s),
            (pair.dlq, "Dlq", pair.spec.dlq_retention_s),
        ):
            threshold = int(retention_s * RETENTION_ALARM_SHARE)
            self._alarm(
                f"{label}{kind}NearRetention",
                queue.metric_approximate_age_of_oldest_message(period=ALARM_PERIOD, statistic="Maximum"),
                threshold=threshold,
                description=f"{queue.queue_name}: oldest message {threshold // 3600} h old, SQS deletes it at "
                f"{retention_s // 3600} h (docs/runbook.md)",
            )

    def _kochava_outage_alarm(self) -> None:
        periods = OUTAGE_ALARM_PERIODS
        self._alarm(
            "KochavaOutage",
            cloudwatch.Metric(
                namespace=self._metrics_namespace,
                metric_name=deliverer_metrics.BREAKER_OPEN,
                dimensions_map={SERVICE_DIMENSION: FUNCTION_DELIVERER},
                statistic="Maximum",
                period=ALARM_PERIOD,
            ),
            threshold=1,
            evaluation_periods=periods,
            description="Kochava is failing: the deliverers hold every event in the delivery queue and probe it a "
            "few times a minute; nothing to do but watch (docs/runbook.md#kochava-outage). OK again "
            f"{periods * int(ALARM_PERIOD.to_minutes())} minutes after the breaker closed.",
        )

    def _dashboard(
        self, queues: tuple[QueueWithDlq, ...], functions: tuple[PipelineFunction, ...], api: apigw.RestApi
    ) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{self._prefix}-pipeline")

        def graph(title: str, metrics: list[cloudwatch.IMetric]) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=metrics, width=DASHBOARD_WIDGET_WIDTH)

        dashboard.add_widgets(
            graph(
                "API requests and errors",
                [
                    api.metric_count(statistic="Sum"),
                    api.metric_client_error(statistic="Sum"),
                    api.metric_server_error(statistic="Sum"),
                ],
            ),
            graph(
                "API latency (p99)",
                [api.metric_latency(statistic="p99"), api.metric_integration_latency(statistic="p99")],
            ),
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=DASHBOARD_WIDGET_WIDTH),
        )
        dashboard.add_widgets(
            graph(
                "Queue depth (visible)",
                [pair.queue.metric_approximate_number_of_messages_visible(statistic="Maximum") for pair in queues],
            ),
            graph(
                "Age of oldest message (s)",
                [pair.queue.metric_approximate_age_of_oldest_message(statistic="Maximum") for pair in queues],
            ),
            graph(
                "DLQ depth (visible)",
                [pair.dlq.metric_approximate_number_of_messages_visible(statistic="Maximum") for pair in queues],
            ),
        )
        dashboard.add_widgets(
            graph("Invocations", [f.function.metric_invocations(statistic="Sum") for f in functions]),
            graph(
                "Errors and throttles",
                [
                    m
                    for f in functions
                    for m in (f.function.metric_errors(statistic="Sum"), f.function.metric_throttles(statistic="Sum"))
                ],
            ),
            graph("Duration (p99)", [f.function.metric_duration(statistic="p99") for f in functions]),
        )
        # The Lambdas' own metrics (EMF): what happened to the events, not just to the invocations.
        namespace = self._metrics_namespace
        enricher = [
            graph(title, [emf_metric(namespace, FUNCTION_ENRICHER, n) for n in metric_names])
            for title, metric_names in ENRICHER_WIDGETS
        ]
        deliverer = [
            graph(title, [emf_metric(namespace, FUNCTION_DELIVERER, n) for n in metric_names])
            for title, metric_names in DELIVERER_WIDGETS
        ]
        rejected, dead_lettered = (
            graph(title, [by_reason(namespace, service, name, dimension)])
            for title, service, name, dimension in BY_REASON_WIDGETS
        )
        dashboard.add_widgets(enricher[0], rejected, enricher[1])
        dashboard.add_widgets(enricher[2], deliverer[0], dead_lettered)
        dashboard.add_widgets(deliverer[1], deliverer[2])
        return dashboard

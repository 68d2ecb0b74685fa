"""The enricher's long-lived pieces, built once per container from its environment: the AWS clients (botocore), the
wired :class:`~functions.enricher.core.Enricher` (its ports: SQS sender, profile store, the Apple client built on first
use), the clock of the AdServices window and the back-off of a record that could not be handed off
(:class:`~functions.adapters.sqs.SqsBackOff`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from functions.enricher.core import Enricher, Log, Queues

if TYPE_CHECKING:
    from functions.enricher.adservices_flow import AdServicesFlow
    from functions.pipeline.settings import Settings
    from functions.ports import RecordBackOff


@dataclass
class Runtime:
    """What lives as long as the container: the wired core, the clock of the AdServices window and the back-off of
    a record that could not be handed off (None: SQS's visibility timeout)."""

    core: Enricher
    clock: Callable[[], float] = time.time
    back_off: RecordBackOff | None = None


def build_runtime(
    env: Mapping[str, str],
    *,
    log: Log,
    clock: Callable[[], float] = time.time,
    instrument_http: Callable[[], None] | None = None,
) -> Runtime:
    """Wire the real adapters from the environment (once per container, on the first invocation). ``log`` is the
    handler's logger; ``instrument_http`` runs once before the first HTTP client is built (X-Ray's patch).

    The clients come from a botocore session, as ``boto3.client`` makes them (boto3's session wraps this one and only
    adds resource and S3 customisations, and its name in the user agent), without importing boto3: that imports
    s3transfer and multiprocessing, ~95 M instructions or ~45 ms of cold start (docs/benchmarks.md)."""
    from botocore.config import Config
    from botocore.session import get_session

    from functions.adapters.profiles_dynamodb import DynamoDbProfileStore
    from functions.adapters.sqs import SqsBackOff, SqsSender
    from functions.enricher.config import EnricherConfig
    from functions.pipeline.settings import Settings

    settings, config = Settings.from_env(env), EnricherConfig.from_env(env)
    boto_config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=5)
    session = get_session()  # region, credentials and endpoint from the environment, as boto3's default session
    sqs = session.create_client("sqs", config=boto_config)
    table = config.profile_table
    store = DynamoDbProfileStore(session.create_client("dynamodb", config=boto_config), table) if table else None
    enricher = Enricher(
        settings=settings,
        sender=SqsSender(sqs),
        queues=Queues(config.ingest_queue_url, config.ingest_dlq_url, config.delivery_queue_url),
        profile_store=store,
        adservices=(lambda: _adservices_flow(settings, instrument_http)) if settings.adservices_resolve else None,
        log=log,
        profile_ttl_s=config.profile_ttl_s,
    )

    return Runtime(core=enricher, clock=clock, back_off=SqsBackOff(sqs, config.ingest_queue_url))


def _adservices_flow(settings: Settings, instrument_http: Callable[[], None] | None) -> AdServicesFlow:
    from functions.adapters import apple
    from functions.enricher.adservices_flow import AdServicesFlow

    if instrument_http is not None:
        instrument_http()
    client = apple.RequestsAdServicesClient(settings.adservices_url)
    budget = apple.DEFAULT_CONNECT_TIMEOUT_S + apple.DEFAULT_READ_TIMEOUT_S + 1.0
    return AdServicesFlow(settings, client, call_budget_s=budget)

"""At most one successful POST per event ``uuid`` + ``kind`` + app: Powertools idempotency on DynamoDB.

The key is ``{"uuid", "kind", "app"}`` (``app`` = the payload's ``kochava_app_id``; hashed by Powertools, under the
fixed prefix :data:`KEY_PREFIX`, so a refactor of this module or a renamed function does not change keys), and the
record keeps a hash of the event's content (``pipeline.delivery_key``). The table is ``IDEMPOTENCY_TABLE_NAME``
(``infra/resources.IDEMPOTENCY_TABLE``); a record lives ``IDEMPOTENCY_TTL_S`` (15 days: longer than a DLQ keeps a
message, so an on-call replay can never reach Kochava twice). A delivered record's data is
:func:`delivery_record`: when, Kochava's HTTP status, the attempts, the kind and the app GUID, never personal data
(``python -m tools.trace`` reads it).

How each case behaves:

* first send: Powertools writes an ``INPROGRESS`` record, we POST; on delivery it becomes ``COMPLETED``.
* any failure (transient, 4xx, bad 200) raises inside the idempotent function, so Powertools **deletes** the
  record: nothing remembers a failure, and a later retry or replay sends again.
* the same key and content again after a delivery: Powertools returns the stored answer without calling us, so
  nothing was posted: answered ``duplicate`` (counted, acknowledged, no POST).
* the same key with a different content (a reused uuid): Powertools' payload validation refuses it, answered
  ``conflict`` (dead-lettered ``uuid_conflict`` by the deliverer, never posted, never dropped).
* a crash mid-send (timeout, OOM) leaves ``INPROGRESS``; the Lambda context is registered, so the record carries
  ``in_progress_expiration`` = the moment that invocation would have timed out. Until then a concurrent copy
  gets ``in_progress`` (retried later by SQS); after it Powertools overwrites the record and sends again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from functions.pipeline.delivery_key import CONTENT_JMESPATH, KEY_JMESPATH, delivery_key
from functions.pipeline.envelope import Envelope
from functions.ports import KochavaClient, KochavaResult, SendAnswer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
    from aws_lambda_powertools.utilities.typing import LambdaContext

KEY_PREFIX: Final = "kochava-delivery"


class DeliveryFailedError(Exception):
    """Raised inside the idempotent function so Powertools deletes the in-progress record."""

    def __init__(self, result: KochavaResult) -> None:
        super().__init__(result.error or result.outcome)
        self.result = result


class IdempotentSender:
    """The :class:`~functions.deliverer.core.OnceSender` of the Lambda."""

    def __init__(self, client: KochavaClient, persistence: BasePersistenceLayer, *, expires_after_s: int) -> None:
        self._client = client
        self.config = IdempotencyConfig(
            event_key_jmespath=KEY_JMESPATH,
            payload_validation_jmespath=CONTENT_JMESPATH,
            expires_after_seconds=expires_after_s,
            raise_on_no_idempotency_key=True,
        )
        self._post_once = idempotent_function(
            self._post,
            data_keyword_argument="delivery_key",
            persistence_store=persistence,
            config=self.config,
            key_prefix=KEY_PREFIX,
        )

    def register_lambda_context(self, context: LambdaContext) -> None:
        """So an in-progress record expires when this invocation would time out (call once per invocation)."""
        self.config.register_lambda_context(context)

    def send_once(
        self, env: Envelope, payload: Mapping[str, Any], *, deadline: float, retry: bool = True
    ) -> SendAnswer:
        """POST unless this ``uuid`` + ``kind`` + app was delivered already; never records a failure."""
        sent: list[KochavaResult] = []  # filled by _post when it runs (the stored answer is plain JSON)
        try:
            self._post_once(
                delivery_key=delivery_key(env),
                env=env,
                payload=payload,
                deadline=deadline,
                retry=retry,
                sent=sent,
            )
        except DeliveryFailedError as failed:
            return SendAnswer("failed", failed.result)
        except IdempotencyAlreadyInProgressError:
            return SendAnswer("in_progress")
        except IdempotencyValidationError:  # same key, other content: a reused uuid
            return SendAnswer("conflict")
        if not sent:  # Powertools answered from the store: delivered before
            return SendAnswer("duplicate")
        return SendAnswer("delivered", sent[-1])

    def _post(
        self,
        *,
        delivery_key: dict[str, Any],
        env: Envelope,
        payload: Mapping[str, Any],
        deadline: float,
        retry: bool,
        sent: list[KochavaResult],
    ) -> dict[str, Any]:
        """The idempotent body: POST, raise unless delivered, return what the store keeps (plain JSON)."""
        result = self._client.send(env.kind, payload, deadline=deadline, retry=retry)
        sent.append(result)
        if not result.delivered:
            raise DeliveryFailedError(result)
        return delivery_record(env, payload, result, delivered_at_ms=int(time.time() * 1000))


def delivery_record(
    env: Envelope, payload: Mapping[str, Any], result: KochavaResult, *, delivered_at_ms: int
) -> dict[str, Any]:
    """What the idempotency record keeps of a delivery (its ``data``): what ``python -m tools.trace`` shows.

    No personal data: no payload, no device id, only the facts of the POST.

    >>> from functions.ports import KochavaResult
    >>> env = Envelope(uuid="u-1", kind="event", event_name="Purchase", payload={}, adservices_generated_at=None)
    >>> result = KochavaResult(outcome="delivered", http_status=200, attempts=2)
    >>> delivery_record(env, {"kochava_app_id": "koapp-guid"}, result, delivered_at_ms=1764500000000)
    {'delivered_at_ms': 1764500000000, 'http_status': 200, 'attempts': 2, 'kind': 'event', 'app': 'koapp-guid'}
    """
    app = payload.get("kochava_app_id")
    return {
        "delivered_at_ms": delivered_at_ms,
        "http_status": result.http_status,
        "attempts": result.attempts,
        "kind": env.kind,
        "app": app if isinstance(app, str) else None,
    }

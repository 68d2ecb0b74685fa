"""The ports: the small Protocols the enricher and deliverer cores depend on, and the values that cross them.

The cores (``functions/enricher/core.py``, ``functions/deliverer/core.py``) are written against these and
nothing else of the outside world. ``functions/adapters/`` implements them on boto3 and requests; the tests pass
in-memory fakes (``tests/fakes.py``), so the cores have fast unit tests without moto or HTTP.

========================  ===========================================  ==========================================
port                      used by                                      adapter
========================  ===========================================  ==========================================
:class:`MessageSender`    enricher (delivery queue, ingest DLQ, re-    :class:`functions.adapters.sqs.SqsSender`
                          queue), deliverer (delivery DLQ)
:class:`ProfileStore`     enricher (device profiles)                   ``adapters.profiles_dynamodb``
:class:`AdServicesClient` enricher (Apple's attribution API)           ``adapters.apple``
:class:`KochavaClient`    deliverer (POST one payload)                 ``adapters.kochava_http``
:class:`OnceSender`       deliverer (at most one success per key)      ``deliverer.idempotency`` (Powertools)
:class:`DeliveryQueue`    deliverer (dead-letter, back off)            :class:`functions.adapters.sqs.SqsDeliveryQueue`
:class:`BreakerStore`     deliverer (the shared Kochava breaker,       ``adapters.breaker_dynamodb``
                          attempts per message)
:class:`RecordBackOff`    enricher (a record that could not be handed  :class:`functions.adapters.sqs.SqsBackOff`
                          off, hidden for a while: ``functions.batch``)
========================  ===========================================  ==========================================

Example (a fake satisfies a port structurally):
    >>> class NoProfiles:
    ...     def get_many(self, keys): return {}
    ...     def put_many(self, profiles, expires_at): pass
    >>> store: ProfileStore = NoProfiles()
    >>> store.get_many(["k"])
    {}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from functions.pipeline.adservices import is_developer_mode_payload

if TYPE_CHECKING:  # types only: the deliverer must not import the pydantic contract (cold start)
    from functions.messages import DeliveryRecord, OutgoingMessage, Refused
    from functions.pipeline.breaker import BreakerState
    from functions.pipeline.envelope import Envelope, Kind
    from functions.pipeline.profiles import Profile

# --- Messages ------------------------------------------------------------------------------------------------


class MessageSender(Protocol):
    """Hands messages to a queue (SQS ``SendMessageBatch``)."""

    retried_entries: int  # entries that needed another call so far (a metric)

    def send(self, queue_url: str, messages: Sequence[OutgoingMessage]) -> list[Refused]:
        """Send every message; return those the queue refuses for good (in input order); raise
        :class:`~functions.messages.SendError` when some still fail transiently after the retries."""
        ...


class RecordBackOff(Protocol):
    """Hides a record of the queue being processed for a while (SQS ``ChangeMessageVisibility``), so SQS
    redelivers it later than its visibility timeout."""

    def back_off(self, receipt_handle: str, visibility_timeout_s: int) -> bool:
        """Whether SQS took it (if not, the record comes back after the queue's visibility timeout: sooner, not
        lost). Never raises."""
        ...


# --- Device profiles -----------------------------------------------------------------------------------------


class ProfileStore(Protocol):
    """Device profiles by key (``functions.pipeline.profiles.profile_key``)."""

    def get_many(self, keys: Iterable[str]) -> dict[str, Profile]:
        """The stored profiles of ``keys`` (missing keys are absent); raise on a store failure."""
        ...

    def put_many(self, profiles: Mapping[str, Profile], expires_at: int) -> None:
        """Write (replace) ``profiles``, each expiring at ``expires_at`` (epoch s); raise on a store failure."""
        ...


# --- Apple AdServices ----------------------------------------------------------------------------------------

AdServicesStatus = Literal["resolved", "invalid", "not_ready", "unavailable"]


@dataclass(frozen=True, slots=True)
class AdServicesResult:
    """Apple's answer for one token."""

    status: AdServicesStatus
    http_status: int | None = None  # None: no answer (timeout, connection error)
    attribution: dict[str, Any] | None = None  # only when resolved
    error: str = ""
    elapsed_s: float = 0.0

    @property
    def resolved(self) -> bool:
        return self.status == "resolved"

    @property
    def developer_mode(self) -> bool:
        """Apple's fixed test payload for a device in developer mode: never forward it as attribution."""
        return self.attribution is not None and is_developer_mode_payload(self.attribution)

    @property
    def retryable(self) -> bool:
        """Worth asking again later (while the token is fresh)."""
        return self.status in ("not_ready", "unavailable")


class AdServicesClient(Protocol):
    """Resolves one AdServices token with Apple."""

    def resolve(self, token: str) -> AdServicesResult:
        """Ask Apple once for the attribution of ``token``; never raises for HTTP or network trouble."""
        ...


# --- Kochava -------------------------------------------------------------------------------------------------

HttpOutcome = Literal["delivered", "transient", "permanent", "bad_response"]


@dataclass(frozen=True, slots=True)
class KochavaResult:
    """What happened to one payload sent to Kochava."""

    outcome: HttpOutcome
    http_status: int | None = None  # the last answer's status (None: no answer at all)
    response_body: str = ""  # the last answer's body (cut to MAX_KEPT_BODY_CHARS)
    error: str = ""  # human-readable cause for anything but delivered
    attempts: int = 1  # HTTP attempts made (1 + retries)
    retry_after_s: float | None = None  # Kochava's Retry-After on the last answer, if any
    elapsed_s: float = 0.0

    @property
    def delivered(self) -> bool:
        return self.outcome == "delivered"


class KochavaClient(Protocol):
    """Sends one payload to Kochava."""

    def send(self, kind: Kind, payload: Mapping[str, Any], *, deadline: float, retry: bool = True) -> KochavaResult:
        """POST ``payload`` to the endpoint for ``kind``; give up (transient) before ``deadline`` (monotonic s).
        ``retry=False``: one attempt only, no in-process retry (a breaker probe)."""
        ...


@dataclass(frozen=True, slots=True)
class SendAnswer:
    """What the once-only sender reports for one envelope."""

    status: Literal["delivered", "duplicate", "in_progress", "failed", "conflict"]  # conflict: a reused uuid
    result: KochavaResult | None = None  # the Kochava result of this invocation's POST (None: no POST made)


class OnceSender(Protocol):
    """Sends an envelope's payload at most once successfully per idempotency key (see ``deliverer/idempotency``)."""

    def send_once(
        self, env: Envelope, payload: Mapping[str, Any], *, deadline: float, retry: bool = True
    ) -> SendAnswer: ...


class DeliveryQueue(Protocol):
    """The deliverer's SQS side effects for a batch."""

    def dead_letter(self, messages: Sequence[OutgoingMessage]) -> None:
        """Send every message to the delivery DLQ or raise (nothing of the batch is then acknowledged)."""
        ...

    def back_off(self, holds: Sequence[tuple[DeliveryRecord, int]]) -> list[bool]:
        """Make each record invisible for its visibility timeout (s), 10 per SQS call; per record, False when SQS
        refused it (logged by the caller: the record then comes back after the queue's visibility timeout)."""
        ...


class BreakerStore(Protocol):
    """The shared breaker and the per-message attempt counts (DynamoDB: ``adapters/breaker_dynamodb.py``).

    The breaker is one record with a version. Every write is conditional on the version the writer read, so among
    concurrent invocations exactly one opens it, claims a probe slot or closes it; the others learn they lost
    (False), read again and decide again (``deliverer/outage.py``).
    """

    def read(self, *, consistent: bool = False) -> BreakerState:
        """The breaker as stored (an eventually consistent read, one per batch, unless ``consistent``);
        :data:`CLOSED` (version 0) when absent."""
        ...

    def write(self, state: BreakerState, *, expected_version: int, now: float) -> bool:
        """Store ``state`` (its version becomes ``expected_version + 1``) if the stored version is still
        ``expected_version`` (0: absent); False when another writer came first."""
        ...

    def count_attempt(self, message_id: str, *, now: float) -> int:
        """Count one more real delivery attempt of SQS message ``message_id``; the count so far, this one included.
        Holds and probes are not counted. A replay from the DLQ is a new message: it starts again from 1."""
        ...

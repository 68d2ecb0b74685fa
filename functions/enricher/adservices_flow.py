"""Resolving Apple AdServices tokens of installs while the 24-hour window is open (spec section 4, issue 5).

For each install of a message whose token is still fresh (the mapping already decided: ``outcome`` carries
``adservices_generated_at``), Apple is asked concurrently (a bounded thread pool shared across invocations) and
each answer becomes a :class:`Decision`:

=====================  =============================================================================================
Apple answers          the enricher
=====================  =============================================================================================
200                    attaches it as ``adservices_attribution_details`` (never Apple's developer-mode payload)
400 (invalid token)    gives up on the token, keeps the event: forwarded without ``ad_services_token``
404 (not ready)        re-queues that one raw event with ``DelaySeconds=5`` and ``adservices_attempt=n``; after the
                       3rd try (or when the window would close before the next one) forwards with the token alone
5xx / timeout          re-queues with a growing delay (5 s, 10 s, 20 s ... at most 900 s) while the token stays
                       fresh; when the window would close first, forwards with the token alone
=====================  =============================================================================================

Nothing here holds up the rest of the batch: a re-queued install is handed back to SQS and the other events of
the message are forwarded at once. Tokens are only ever logged as fingerprints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from functions.enricher import metrics as m
from functions.pipeline import adservices
from functions.pipeline.events import EventValues
from functions.pipeline.kochava import Outcome, to_kochava
from functions.pipeline.masking import fingerprint
from functions.pipeline.settings import Settings

if TYPE_CHECKING:  # the client module imports requests: only the handler's factory loads it
    from functions.ports import AdServicesClient

NOT_READY_MAX_TRIES: Final = 3  # Apple: retry a 404 every 5 s, at most 3 attempts
NOT_READY_DELAY_S: Final = 5
UNAVAILABLE_FIRST_DELAY_S: Final = 5
UNAVAILABLE_MAX_DELAY_S: Final = 900  # the SQS maximum DelaySeconds
# A re-queued install must come back with this much window left, for queueing and processing.
REQUEUE_MARGIN_S: Final = 60
MAX_WORKERS: Final = 8  # concurrent Apple calls per container


@dataclass(frozen=True)
class Candidate:
    key: int  # the event's position in its message
    event: EventValues  # after profile fill (plain data)
    outcome: Outcome  # the mapping without attribution (token only)


@dataclass
class Decision:
    key: int
    uuid: str
    action: Literal["deliver", "requeue"]
    outcome: Outcome | None = None  # deliver: what to forward (None: the candidate's own outcome)
    attempt: int = 0  # Apple calls made for this install so far (this one included); the adservices_attempt value
    delay_s: int = 0  # requeue: DelaySeconds
    apple: str = ""  # what Apple answered (for the log): resolved / invalid / not_ready / unavailable / deferred
    http_status: int | None = None  # Apple's HTTP status, None without an answer
    token_fingerprint: str | None = None
    counts: Counter[str] = field(default_factory=Counter)


def wants_resolution(settings: Settings, event: EventValues, outcome: Outcome) -> bool:
    """Ask Apple when switched on, for an install forwarded with a fresh token and no usable client attribution
    (an app that already fetched the attribution itself sends it as ``adservices.attribution``)."""
    ads = event["adservices"]
    return (
        settings.adservices_resolve
        and outcome.status == "ok"
        and outcome.kind == "install"
        and ads is not None
        and bool(ads["token"])
        and outcome.adservices_generated_at is not None
        and adservices.usable_attribution(ads["attribution"]) is None
    )


def unavailable_delay_s(attempt: int) -> int:
    """Delay before asking again after the ``attempt``-th call failed with 5xx / timeout.

    >>> [unavailable_delay_s(n) for n in (1, 2, 3, 8, 9, 20)]
    [5, 10, 20, 640, 900, 900]
    """
    return int(min(UNAVAILABLE_MAX_DELAY_S, UNAVAILABLE_FIRST_DELAY_S * 2 ** min(attempt - 1, 16)))


class AdServicesFlow:
    """Decides, per install, whether to ask Apple, and what to do with the answer (see the module doc)."""

    def __init__(
        self,
        settings: Settings,
        client: AdServicesClient,
        *,
        max_workers: int = MAX_WORKERS,
        call_budget_s: float = 8.0,
    ) -> None:
        self.settings = settings
        self.client = client
        self.max_workers = max_workers
        self.call_budget_s = call_budget_s  # Lambda time an Apple call may need (client timeout + margin)
        self._pool: ThreadPoolExecutor | None = None

    def resolve_all(
        self,
        candidates: Sequence[Candidate],
        now: float,
        attempts_so_far: int,
        remaining_s: Callable[[], float] | None = None,
    ) -> list[Decision]:
        """One decision per candidate, in order; Apple is called concurrently."""
        if remaining_s is not None and remaining_s() < self.call_budget_s:
            return [self._deferred(c, attempts_so_far) for c in candidates]
        tokens = [_token(c.event) for c in candidates]
        if len(candidates) == 1:
            answers = [self._ask(tokens[0])]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="apple")
            answers = list(self._pool.map(self._ask, tokens))
        decisions = []
        for c, (status, attribution, http_status) in zip(candidates, answers, strict=True):
            decision = self._decide(c, status, attribution, now, attempts_so_far + 1)
            decision.http_status = http_status
            decision.attempt = attempts_so_far + 1
            decisions.append(decision)
        return decisions

    def _ask(self, token: str | None) -> tuple[str, dict[str, Any] | None, int | None]:
        if not token:
            return "invalid", None, None
        try:
            answer = self.client.resolve(token)
        except Exception:  # a client bug must not lose the event: treat it as Apple being unavailable
            return "unavailable", None, None
        return answer.status, answer.attribution, answer.http_status

    def _deferred(self, c: Candidate, attempts_so_far: int) -> Decision:
        decision = self._base(c, "deferred")
        decision.action, decision.attempt, decision.delay_s = "requeue", attempts_so_far, NOT_READY_DELAY_S
        decision.counts[m.ADSERVICES_DEFERRED] += 1
        return decision

    def _base(self, c: Candidate, apple: str) -> Decision:
        token = _token(c.event)
        return Decision(
            key=c.key,
            uuid=c.event["uuid"],
            action="deliver",
            apple=apple,
            token_fingerprint=fingerprint(token),
        )

    def _still_fresh_after(self, c: Candidate, now: float, delay_s: int) -> bool:
        generated_at = c.outcome.adservices_generated_at
        return generated_at is not None and adservices.is_fresh(generated_at, now + delay_s + REQUEUE_MARGIN_S)

    def _decide(
        self, c: Candidate, status: str, attribution: dict[str, Any] | None, now: float, attempt: int
    ) -> Decision:
        decision = self._base(c, status)
        if status == "resolved" and attribution is not None:
            if adservices.usable_attribution(attribution) is None:
                decision.counts[m.ADSERVICES_DEVELOPER_MODE] += 1
            else:
                decision.counts[m.ADSERVICES_RESOLVED] += 1
            decision.outcome = to_kochava(c.event, self.settings, now=now, attribution=attribution)
            return decision
        if status == "invalid":
            decision.counts[m.ADSERVICES_INVALID] += 1
            decision.outcome = to_kochava(_without_token(c.event), self.settings, now=now)
            return decision
        if status == "not_ready":
            if attempt < NOT_READY_MAX_TRIES and self._still_fresh_after(c, now, NOT_READY_DELAY_S):
                decision.action, decision.attempt, decision.delay_s = "requeue", attempt, NOT_READY_DELAY_S
                return decision
            decision.counts[m.ADSERVICES_NOT_READY] += 1
            return decision  # the token alone: Kochava may still resolve it itself
        # unavailable (5xx, timeout, connection error) or an answer this code does not know
        delay = unavailable_delay_s(attempt)
        if self._still_fresh_after(c, now, delay):
            decision.action, decision.attempt, decision.delay_s = "requeue", attempt, delay
            return decision
        decision.counts[m.ADSERVICES_UNAVAILABLE] += 1
        return decision


def _token(event: EventValues) -> str | None:
    ads = event["adservices"]
    return ads["token"] if ads else None


def _without_token(event: EventValues) -> EventValues:
    if event["adservices"] is None:
        return event
    return {**event, "adservices": {**event["adservices"], "token": None}}

"""The delivery-queue message: one Kochava payload plus what the deliverer needs to send it right.

Built by the enricher from an :class:`~functions.pipeline.kochava.Outcome` (any :class:`Deliverable`: this module
imports nothing of the mapping, which imports :data:`Kind` from here), parsed by the deliverer and by
``tools.dlq``. The format is documented in docs/DESIGN.md; bump ``VERSION`` on an incompatible change.

Example:
    >>> body = build_body(uuid="e-1", kind="event", event_name="Purchase", payload={"action": "event"},
    ...                   adservices_generated_at=None)
    >>> parse(body).kind
    'event'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import orjson

VERSION: Final = 1
Kind = Literal["install", "event", "identityLink"]
"""What a payload is for Kochava: an install or an event (both POSTed to /track/json), or an IdentityLink."""
_KINDS: Final[dict[str, Kind]] = {"install": "install", "event": "event", "identityLink": "identityLink"}
KINDS: Final = frozenset(_KINDS)


class Deliverable(Protocol):
    """What :func:`build` reads of a mapping outcome (:class:`functions.pipeline.kochava.Outcome` is one)."""

    @property
    def uuid(self) -> str | None: ...
    @property
    def status(self) -> str: ...
    @property
    def kind(self) -> Kind | None: ...
    @property
    def event_name(self) -> str | None: ...
    @property
    def payload(self) -> dict[str, Any] | None: ...
    @property
    def adservices_generated_at(self) -> float | None: ...


class EnvelopeError(ValueError):
    """The message is not a delivery envelope this code understands."""


@dataclass(frozen=True, slots=True)
class Envelope:
    uuid: str
    kind: Kind
    event_name: str | None
    payload: dict[str, Any]  # exactly the body to POST
    adservices_generated_at: float | None  # epoch s; lets the deliverer re-apply the 24 h window


def build_body(
    *, uuid: str, kind: Kind, event_name: str | None, payload: dict[str, Any], adservices_generated_at: float | None
) -> str:
    """Serialize an envelope (a str, as SQS message bodies are)."""
    return orjson.dumps(
        {
            "v": VERSION,
            "uuid": uuid,
            "kind": kind,
            "event_name": event_name,
            "payload": payload,
            "adservices_generated_at": adservices_generated_at,
        }
    ).decode()


def build(outcome: Deliverable) -> str:
    """The delivery-queue body for a successful outcome (``status == "ok"``)."""
    if outcome.status != "ok" or outcome.payload is None or outcome.kind is None or outcome.uuid is None:
        raise EnvelopeError(f"only an ok outcome with a payload can be delivered, got status {outcome.status!r}")
    return build_body(
        uuid=outcome.uuid,
        kind=outcome.kind,
        event_name=outcome.event_name,
        payload=outcome.payload,
        adservices_generated_at=outcome.adservices_generated_at,
    )


def parse(body: str | bytes) -> Envelope:
    """Parse a delivery-queue body; raise :class:`EnvelopeError` saying what is wrong."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise EnvelopeError("not a JSON object")
    if raw.get("v") != VERSION:
        raise EnvelopeError(f"unsupported envelope version {raw.get('v')!r}")
    uuid, kind, payload = raw.get("uuid"), _KINDS.get(str(raw.get("kind"))), raw.get("payload")
    if not isinstance(uuid, str) or not uuid:
        raise EnvelopeError("uuid: missing")
    if kind is None:
        raise EnvelopeError(f"kind: must be one of {sorted(KINDS)}")
    if not isinstance(payload, dict):
        raise EnvelopeError("payload: must be an object")
    generated_at = raw.get("adservices_generated_at")
    if generated_at is not None and (isinstance(generated_at, bool) or not isinstance(generated_at, int | float)):
        raise EnvelopeError("adservices_generated_at: must be a number or null")
    event_name = raw.get("event_name")
    return Envelope(
        uuid=uuid,
        kind=kind,
        event_name=event_name if isinstance(event_name, str) else None,
        payload=payload,
        adservices_generated_at=float(generated_at) if generated_at is not None else None,
    )

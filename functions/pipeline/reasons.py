"""Machine-readable reasons an event is rejected, filtered or dead-lettered.

They travel as the ``reason`` message attribute of DLQ messages, as the ``reason`` of ``tools.transform`` lines
and as a metric dimension, so on-call can group and replay by reason (see docs/DESIGN.md).

Example:
    >>> is_replayable(INVALID_EVENT), is_replayable(MISSING_APP_ID)
    (False, True)
"""

from __future__ import annotations

from typing import Final

# Enricher: the event itself is wrong. Replaying cannot help; the sender must be fixed.
INVALID_JSON: Final = "invalid_json"
INVALID_BODY: Final = "invalid_body"
INVALID_EVENT: Final = "invalid_event"
NO_DEVICE_IDENTIFIER: Final = "no_device_identifier"
# Enricher: the event's Kochava payload (or the event itself) cannot be carried by one SQS message (1 MiB, message
# attributes included). Replaying fails the same way: the sender must send less (e.g. trim a huge property).
# Kochava itself refuses requests over 2 MB, so an event this big could not have been delivered much larger anyway.
PAYLOAD_TOO_LARGE: Final = "payload_too_large"
# Enricher: configuration is missing; replay after deploying the missing Kochava app GUID.
MISSING_APP_ID: Final = "missing_app_id"
# Enricher: the API key (source) the event came in with is bound to other Kochava apps (SOURCE_APPS). Replaying
# cannot help: the source must send with its own key, or the binding must be changed and the event replayed.
APP_NOT_ALLOWED: Final = "app_not_allowed"
# Deliberately not delivered (counted, never dead-lettered).
FILTERED_EVENT: Final = "filtered_event"
# Deliverer.
KOCHAVA_REJECTED: Final = "kochava_rejected"
KOCHAVA_BAD_RESPONSE: Final = "kochava_bad_response"
RETRIES_EXHAUSTED: Final = "retries_exhausted"
# Deliverer: another event with the same uuid, kind and app but a different payload was delivered first (a reused
# uuid). Replaying would conflict again: send it with a fresh uuid.
UUID_CONFLICT: Final = "uuid_conflict"
# Moved by SQS redrive after maxReceiveCount: the message carries no reason attribute of its own.
REDRIVEN: Final = "redriven"

NOT_REPLAYABLE: Final = frozenset(
    {INVALID_JSON, INVALID_BODY, INVALID_EVENT, NO_DEVICE_IDENTIFIER, PAYLOAD_TOO_LARGE, UUID_CONFLICT}
)
DEAD_LETTER_REASONS: Final = frozenset(
    {
        INVALID_JSON,
        INVALID_BODY,
        INVALID_EVENT,
        NO_DEVICE_IDENTIFIER,
        PAYLOAD_TOO_LARGE,
        MISSING_APP_ID,
        APP_NOT_ALLOWED,
        KOCHAVA_REJECTED,
        KOCHAVA_BAD_RESPONSE,
        RETRIES_EXHAUSTED,
        UUID_CONFLICT,
        REDRIVEN,
    }
)


def is_replayable(reason: str | None) -> bool:
    """True when replaying a dead-lettered message can succeed (the fault was not in the event itself)."""
    return reason not in NOT_REPLAYABLE

"""How long an ingest message that could not be handed off waits before its next try (pure).

A record fails when SQS would not take its deliveries, dead letters or re-queues (after the sender's own retries),
or something unexpected happened. None of that is the event's fault, so the record is not sent round every 3
minutes (the queue's visibility timeout) towards the DLQ: the handler sets its visibility to a backoff growing 5x
per receive (at most SQS's 12 hours), so the ingest queue's 7 receives before SQS's redrive span about 25 hours
of trouble::

    receive   1      2      3       4          5          6      (7: redriven if it still fails)
    wait      60 s   5 min  25 min  2 h 5 min  10 h 25 m  12 h

Example:
    >>> [handoff_retry_visibility_s(n) for n in (1, 2, 3, 4, 5, 9)]
    [60, 300, 1500, 7500, 37500, 43200]
    >>> round(sum(handoff_retry_visibility_s(n) for n in range(1, 7)) / 3600, 1)
    25.0
"""

from __future__ import annotations

from typing import Final

RETRY_BASE_S: Final = 60
RETRY_FACTOR: Final = 5
SQS_MAX_VISIBILITY_S: Final = 12 * 3600


def handoff_retry_visibility_s(receive_count: int, *, base_s: float = RETRY_BASE_S) -> int:
    """``base_s * 5**(receive_count - 1)`` whole seconds, at least 1, at most SQS's 12 hours."""
    exponent = max(0, min(receive_count - 1, 12))
    seconds: int = round(base_s * RETRY_FACTOR**exponent)
    return max(1, min(SQS_MAX_VISIBILITY_S, seconds))

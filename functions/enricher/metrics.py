"""Metric names the enricher emits (CloudWatch EMF through Powertools, namespace ``resources.METRICS_NAMESPACE``).

All are counts per invocation. ``EventsRejected`` is emitted twice: once in total, and once per reason with a
``reason`` dimension (``invalid_event``, ``missing_app_id``...), so a dashboard can alarm on either.
``EventsFiltered`` likewise: in total, and per call type with a ``type`` dimension (Segment ``page``, ``group``,
``alias``; ``track`` for FILTERED_EVENTS such as heartbeat, or a Segment call that switched Kochava off).
"""

from __future__ import annotations

from typing import Final

EVENTS_RECEIVED: Final = "EventsReceived"  # events in the ingest messages (a re-queued install is not recounted)
EVENTS_REJECTED: Final = "EventsRejected"  # sent to the ingest DLQ (invalid, or rejected by the mapping)
EVENTS_FILTERED: Final = "EventsFiltered"  # dropped on purpose (FILTERED_EVENTS, e.g. heartbeat)
EVENTS_FORWARDED: Final = "EventsForwarded"  # Kochava payloads handed to the delivery queue
SEND_RETRIES: Final = "SendMessageRetries"  # SendMessageBatch entries that needed another call
PROFILE_FILLED: Final = "ProfileFilled"  # events that got at least one field from their device profile
PROFILE_UPDATED: Final = "ProfileUpdated"  # device profiles written
PROFILE_WRITE_FAILED: Final = "ProfileWriteFailed"  # device profiles not written (enrichment of later events only)
PROFILE_READ_FAILED: Final = "ProfileReadFailed"  # events enriched without their profile: the read failed
HANDOFF_BACKOFFS: Final = "HandOffBackoffs"  # records that could not be handed off, retried later with a backoff
ADSERVICES_TOKEN_EXPIRED: Final = "AdServicesTokenExpired"  # noqa: S105 - install token >= 24 h old: not sent
ADSERVICES_RESOLVED: Final = "AdServicesResolved"  # Apple answered 200: attribution attached
ADSERVICES_REQUEUED: Final = "AdServicesRequeued"  # install re-queued to ask Apple again later
ADSERVICES_NOT_READY: Final = "AdServicesNotReady"  # Apple still 404 after the last try: token sent alone
ADSERVICES_INVALID: Final = "AdServicesTokenInvalid"  # Apple 400: token dropped, event kept
ADSERVICES_UNAVAILABLE: Final = "AdServicesUnavailable"  # Apple 5xx / timeout until the window closed: token alone
ADSERVICES_DEVELOPER_MODE: Final = "AdServicesDeveloperMode"  # Apple's test payload: not forwarded
ADSERVICES_DEFERRED: Final = "AdServicesDeferred"  # not asked (too little Lambda time left): re-queued, try kept

REJECTED_REASON_DIMENSION: Final = "reason"
FILTERED_TYPE_DIMENSION: Final = "type"  # EventsFiltered per call type: page, group, alias, track (heartbeat)...

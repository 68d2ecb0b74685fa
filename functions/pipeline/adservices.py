"""The Apple AdServices token rules: the 24-hour window and Apple's developer-mode test payload.

Pure functions given a clock (``now``, epoch seconds): no network here. Resolution with Apple lives in
``functions/adapters/apple.py``; the enricher decides when to call it, the deliverer re-applies the window at
send time with :func:`apply_window_at_send`.

Example:
    >>> is_fresh(generated_at=1_000.0, now=1_000.0 + TOKEN_VALIDITY_S - 1)
    True
    >>> is_fresh(generated_at=1_000.0, now=1_000.0 + TOKEN_VALIDITY_S)
    False
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

TOKEN_VALIDITY_S: Final = 24 * 3600
TOKEN_KEY: Final = "ad_services_token"  # noqa: S105 - a payload field name, not a secret
ATTRIBUTION_KEY: Final = "adservices_attribution_details"

# Apple answers a device in developer mode with this fixed payload; it is not a real attribution.
_DEVELOPER_MODE_IDS: Final = {"orgId": 1234567890, "campaignId": 1234567890, "adGroupId": 1234567890}


def token_age_s(generated_at: float, now: float) -> float:
    """Seconds since the token was generated (negative when the device clock is ahead)."""
    return now - generated_at


def is_fresh(generated_at: float, now: float) -> bool:
    """A token may be sent (and resolved) only while ``age < 24 h``; at exactly 24 h it is stale."""
    return token_age_s(generated_at, now) < TOKEN_VALIDITY_S


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def is_developer_mode_payload(attribution: Mapping[str, Any]) -> bool:
    """True for Apple's fixed developer-mode test payload (orgId/campaignId/adGroupId = 1234567890).

    >>> is_developer_mode_payload({"attribution": True, "orgId": 1234567890, "campaignId": 1234567890,
    ...                            "adGroupId": 1234567890, "keywordId": 123222})
    True
    """
    return all(_as_int(attribution.get(key)) == value for key, value in _DEVELOPER_MODE_IDS.items())


def usable_attribution(attribution: Any) -> dict[str, Any] | None:
    """The attribution to forward, or None when absent, not an object, empty, or developer-mode."""
    if not isinstance(attribution, dict) or not attribution or is_developer_mode_payload(attribution):
        return None
    return attribution


def apply_window_at_send(
    payload: dict[str, Any], generated_at: float | None, now: float
) -> tuple[dict[str, Any], bool]:
    """Re-check the window when the payload is about to be POSTed (it may have waited in a queue or DLQ).

    Returns ``(payload, stripped)``: a copy without ``data.ad_services_token`` when the token is now stale
    (resolved ``adservices_attribution_details`` are kept), else the payload itself unchanged.

    >>> p = {"action": "install", "data": {"ad_services_token": "tok", "usertime": 1}}
    >>> apply_window_at_send(p, generated_at=0.0, now=float(TOKEN_VALIDITY_S))[0]["data"]
    {'usertime': 1}
    """
    data = payload.get("data")
    if not isinstance(data, dict) or TOKEN_KEY not in data:
        return payload, False
    if generated_at is not None and is_fresh(generated_at, now):
        return payload, False
    stripped_data = {key: value for key, value in data.items() if key != TOKEN_KEY}
    return {**payload, "data": stripped_data}, True

"""How personal data appears in logs: never raw. Shared by both Lambdas.

:func:`fingerprint` turns one known value (an AdServices token, an IDFA) into a short, stable SHA-256 fingerprint,
so on-call can see that two log lines are about the same value without seeing it. :func:`redact` masks whatever
free text may echo such values (Kochava error bodies, exception messages): device identifiers (IDFA, IDFV, Android
ids) and long opaque tokens become fingerprints, IP addresses become ``<ip>`` (the IPv4 space is small enough to
reverse a hash).

Example:
    >>> fingerprint("1.2.3.4")
    'sha256:6694f83c9f47'
    >>> fingerprint(None) is None
    True
    >>> redact('{"idfa": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "ip": "203.0.113.7"}')
    '{"idfa": "<id:sha256:2afcf919a0c1>", "ip": "<ip>"}'
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Final, overload

_UUID: Final = re.compile(r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b")
_HEX_ID: Final = re.compile(r"\b[0-9A-Fa-f]{16,}\b")  # android_id (16 hex), other hex device ids
_IPV4: Final = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")
_IPV6_CANDIDATE: Final = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f.]{0,15}){2,8}(?![\w:])")
_TOKEN: Final = re.compile(r"[A-Za-z0-9+/_=-]{40,}")  # AdServices tokens are long base64 strings


@overload
def fingerprint(value: str) -> str: ...
@overload
def fingerprint(value: None) -> None: ...
def fingerprint(value: str | None) -> str | None:
    """``sha256:<first 12 hex digits>`` of the value (None for None or ""): matches lines, never recovers it."""
    if not value:
        return None
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]


def _mask_ipv6(match: re.Match[str]) -> str:
    try:
        ipaddress.IPv6Address(match.group())
    except ValueError:
        return match.group()
    return "<ip>"


def redact(text: str, limit: int = 512) -> str:
    """``text`` with identifiers, IPs and tokens masked, cut to ``limit`` characters."""
    text = _TOKEN.sub(lambda m: f"<token:{fingerprint(m.group())}>", text)
    text = _UUID.sub(lambda m: f"<id:{fingerprint(m.group().upper())}>", text)
    text = _HEX_ID.sub(lambda m: f"<id:{fingerprint(m.group().lower())}>", text)
    text = _IPV6_CANDIDATE.sub(_mask_ipv6, text)
    text = _IPV4.sub("<ip>", text)
    return text if len(text) <= limit else text[:limit] + "..."

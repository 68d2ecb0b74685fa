"""How personal data appears in logs: never raw. Shared by both Lambdas and the on-call tools.

Which values are personal (docs/privacy.md): advertising ids, device ids, IPs, user agents, user ids, consent
strings (``tc_string``), referrers, AdServices tokens and anything shaped like an e-mail address.
:func:`is_personal_key` tells by a JSON key (``advertising_id``, ``advertisingId`` and ``advertising-id`` alike);
``tools.dlq`` and ``tools.privacy`` mask by it too.

:func:`fingerprint` turns one known value (an AdServices token, an IDFA) into a short, stable SHA-256 fingerprint,
so on-call can see that two log lines are about the same value without seeing it. :func:`redact` masks whatever
free text may echo such values (Kochava error bodies, exception messages): device identifiers (IDFA, IDFV,
Android ids) and long opaque tokens become fingerprints; IP addresses become ``<ip>`` (the IPv4 space is small
enough to reverse a hash), e-mail addresses ``<email>``, user agents ``<user-agent>`` (any ``product/version``
token with its comments: ``MyApp/3.2 (iPhone; iOS 17.1)``, ``okhttp/4.12.0``, percent-encoded too), and whatever
else a personal key holds (user ids, consent strings, referrers: often short or guessable) ``<redacted>``: a
string or a number, in JSON (``"user_id": 42``), Python repr (``'user_id': 'u-42'``), ``key=value`` and
``key="value"`` text, and ``key: "value"`` / ``key: 42``.

:func:`exception_fields` is what a log line may say about an exception: its type, its message redacted, and where
it was raised (file, line, function of each frame); never a traceback's text, which repeats the message raw.

Example:
    >>> fingerprint("1.2.3.4")
    'sha256:6694f83c9f47'
    >>> fingerprint(None) is None
    True
    >>> redact('{"idfa": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "ip": "203.0.113.7"}')
    '{"idfa": "<id:sha256:2afcf919a0c1>", "ip": "<ip>"}'
    >>> redact('{"user_id": "u-42", "tc_string": "CPXx", "note": "mail jo@example.com"}')
    '{"user_id": "<redacted>", "tc_string": "<redacted>", "note": "mail <email>"}'
    >>> redact("device_ua=Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) rejected")
    'device_ua=<user-agent> rejected'
    >>> redact("{'user_id': 1234567, 'ip': '10.0.0.1'} user_id=u-42 userId='Jo Doe' agent MyApp/3.2 (Android 14)")
    "{'user_id': '<redacted>', 'ip': '<ip>'} user_id=<redacted> userId='<redacted>' agent <user-agent>"
    >>> is_personal_key("advertisingId"), is_personal_key("id", parent="device"), is_personal_key("id")
    (True, True, False)
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import traceback
from collections.abc import Callable
from typing import Final, overload

# The patterns below are compiled on first use (:func:`_re`), not at import: compiling the ten costs ~8.5 M
# instructions (~1 %) of each Lambda's cold start (docs/benchmarks.md), and only an error or a dead letter needs them.
_UUID: Final = r"\b[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\b"
_HEX_ID: Final = r"\b[0-9A-Fa-f]{16,}\b"  # android_id (16 hex), other hex device ids
_IPV4: Final = r"\b(?:\d{1,3}\.){3}\d{1,3}\b"
_IPV6_CANDIDATE: Final = r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f.]{0,15}){2,8}(?![\w:])"
_OPAQUE_RUN: Final = r"[A-Za-z0-9+/_=-]{40,}"  # AdServices tokens are long base64 strings
# The lookbehind starts a match only where a run of local-part characters starts: linear on a long run without
# an "@" (without it, 250 KB of letters took minutes: every position was tried and backtracked).
_EMAIL: Final = r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
# User agents: product/version tokens (the slash may be percent-encoded), each with its parenthesised comments
# (model, OS), one after the other: "Mozilla/5.0 (iPhone; ...) AppleWebKit/605.1.15 (KHTML, like Gecko)",
# "MyApp/3.2 (iPhone; iOS 17.1)", "okhttp/4.12.0". The version starts with a digit (paths like /v1/events do not);
# "HTTP/1.1" is a protocol, not an agent.
_UA_PRODUCT: Final = (
    r"(?!HTTPS?(?:/|%2[Ff]))[A-Za-z][A-Za-z0-9._+-]*(?:/|%2[Ff])[0-9][A-Za-z0-9._+-]*(?:(?:\s|%20)*\([^)]*\))*"
)
_USER_AGENT: Final = rf"\b{_UA_PRODUCT}(?:(?:\s|%20)+{_UA_PRODUCT})*"
# A keyed value: a quoted key (JSON, Python repr) or a bare one (key=value, key: "value" text), then its value: a
# quoted string (escapes kept in it), a number, or (after "=" or a quoted key) a bare token.
_KEYED: Final = (
    r"""(?P<kq>["']?)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)(?P=kq)(?P<sep>\s*[:=]\s*)"""
    r"""(?:"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>(?:[^'\\]|\\.)*)'|(?P<num>-?\d+(?:\.\d+)?)\b|(?P<bare>[^\s,;&)}\]"']+))"""
)
_NOT_VALUES: Final = frozenset({"null", "none", "true", "false"})
# A device object (JSON or Python repr, no nested object inside): its "id" is a device id.
_DEVICE_OBJECT: Final = r"""(?P<head>["']?device["']?\s*[:=]\s*)(?P<body>\{[^{}]*\})"""

# Keys whose values are personal, compared after lower-casing and dropping everything but letters and digits.
PERSONAL_KEYS: Final = frozenset(
    {
        # device and advertising ids, native / Segment / Kochava spellings
        "idfa",
        "idfv",
        "adid",
        "androidid",
        "advertisingid",
        "kochavadeviceid",
        "deviceid",
        "anonymousid",
        # network
        "ip",
        "originationip",
        "useragent",
        "deviceua",
        # the person
        "userid",
        "email",
        # consent and attribution
        "tcstring",
        "referrer",
        "adservicestoken",
        "token",
    }
)
# `id` is a device id only inside a `device` object (native `device.id`, Segment `context.device.id`).
_PERSONAL_ID_PARENTS: Final = frozenset({"device"})


@functools.cache
def _re(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled once per process."""
    return re.compile(pattern)


def _norm_key(key: str) -> str:
    return "".join(c for c in key.lower() if c.isalnum())


def is_personal_key(key: str, parent: str | None = None) -> bool:
    """True when the value under ``key`` (inside an object under ``parent``) is personal data."""
    norm = _norm_key(key)
    return norm in PERSONAL_KEYS or (norm == "id" and parent is not None and _norm_key(parent) in _PERSONAL_ID_PARENTS)


def looks_like_email(value: str) -> bool:
    """``True`` for text that contains an e-mail address (masked wherever it appears).

    >>> looks_like_email("Jo.Doe+x@mail.example.co.uk"), looks_like_email("order@3")
    (True, False)
    """
    return _re(_EMAIL).search(value) is not None


@overload
def fingerprint(value: str) -> str: ...
@overload
def fingerprint(value: None) -> None: ...
def fingerprint(value: str | None) -> str | None:
    """``sha256:<first 12 hex digits>`` of the value (None for None or ""): matches lines, never recovers it."""
    if not value:
        return None
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:12]


def mask_ipv6(text: str, mask: Callable[[str], str] = lambda _: "<ip>") -> str:
    """``text`` with every IPv6 address, compressed forms included, replaced by ``mask(address)``: the one IPv6
    rule of the Lambdas' logs and the on-call tools' output.

    >>> mask_ipv6("from 2001:db8::1f00:7 at 10:30:00, fe80::1%eth0")
    'from <ip> at 10:30:00, <ip>%eth0'
    """

    def one(match: re.Match[str]) -> str:
        try:
            ipaddress.IPv6Address(match.group())
        except ValueError:
            return match.group()
        return mask(match.group())

    return _re(_IPV6_CANDIDATE).sub(one, text)


_PLACEHOLDER: Final = r"<[a-z-]+(?::sha256:[0-9a-f]{12})?>"


def _mask_keyed(match: re.Match[str], parent: str | None = None) -> str:
    """A personal key's value -> ``<redacted>`` (user ids, consent strings, referrers, user agents are often short
    or guessable: a fingerprint could be reversed), unless an earlier pass already masked all of it. A dotted key
    (``device.id``) is judged by its last part inside the one before."""
    quote, key, sep = match.group("kq"), match.group("key"), match.group("sep")
    dq, sq, num, bare = match.group("dq", "sq", "num", "bare")
    value = next((v for v in (dq, sq, num, bare) if v is not None), "")
    *path, name = key.split(".")
    if not value or _re(_PLACEHOLDER).fullmatch(value) or not is_personal_key(name, path[-1] if path else parent):
        return match.group()
    if bare is not None and (value.lower() in _NOT_VALUES or (not quote and "=" not in sep)):
        return match.group()  # a literal, or prose after "key:" (an error message), not a value
    head = f"{quote}{key}{quote}{sep}"
    if dq is not None:
        return f'{head}"<redacted>"'
    if sq is not None or (num is not None and quote):
        return f"{head}'<redacted>'" if quote == "'" or sq is not None else f'{head}"<redacted>"'
    return f"{head}<redacted>"


def redact(text: str, limit: int = 512) -> str:
    """``text`` with personal values, identifiers, IPs, tokens, e-mail addresses and user agents masked, cut to
    ``limit`` characters."""
    text = _re(_EMAIL).sub("<email>", text)
    text = _re(_USER_AGENT).sub("<user-agent>", text)
    text = _re(_OPAQUE_RUN).sub(lambda m: f"<token:{fingerprint(m.group())}>", text)
    text = _re(_UUID).sub(lambda m: f"<id:{fingerprint(m.group().upper())}>", text)
    text = _re(_HEX_ID).sub(lambda m: f"<id:{fingerprint(m.group().lower())}>", text)
    text = mask_ipv6(text)
    text = _re(_IPV4).sub("<ip>", text)
    text = _re(_DEVICE_OBJECT).sub(
        lambda m: m.group("head") + _re(_KEYED).sub(lambda k: _mask_keyed(k, "device"), m.group("body")), text
    )
    text = _re(_KEYED).sub(_mask_keyed, text)
    return text if len(text) <= limit else text[:limit] + "..."


def exception_fields(exc: BaseException) -> dict[str, object]:
    """What a log line may carry about ``exc``: ``error`` (its type), ``detail`` (its message, redacted) and
    ``where`` (``file:line in function`` of each frame, innermost last). Exception messages can hold event data (a
    ``KeyError`` of a user id, a validation error echoing a value, an AWS error naming an item); a formatted
    traceback (``logger.exception``) repeats the message raw, so it is never logged.

    >>> fields = exception_fields(KeyError("user_id=u-42 from 203.0.113.7"))
    >>> fields["error"], fields["detail"], fields["where"]
    ('KeyError', "'user_id=<redacted> from <ip>'", [])
    """
    frames = traceback.extract_tb(exc.__traceback__)
    where = [f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} in {frame.name}" for frame in frames]
    return {"error": type(exc).__name__, "detail": redact(str(exc)), "where": where[-8:]}

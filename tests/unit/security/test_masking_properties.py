"""Invariant (docs/security.md, I5): no id, IP, user agent or user id of an event reaches a log line unmasked.

For arbitrary events, the text a log line can carry about them (the event as JSON, as a Python repr in an exception
message, as ``key=value`` / ``key="value"`` text) comes out of :func:`~functions.pipeline.masking.redact` without
any of its device ids, advertising id, Kochava device id, IP, user agent or user id (numbers too). The enricher's
exception log carries the exception's type, redacted message and frames, never a traceback's raw text.
"""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from functions.pipeline.masking import exception_fields, redact

_id_chars = st.characters(codec="ascii", categories=("Lu", "Ll", "Nd"), include_characters="-_")
opaque_ids = st.text(alphabet=_id_chars, min_size=8, max_size=40).filter(lambda v: any(c.isalnum() for c in v))
uuids = st.uuids().map(lambda u: str(u).upper())
ips = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
_token = st.text(alphabet=st.characters(codec="ascii", categories=("Lu", "Ll", "Nd")), min_size=2, max_size=12)
user_agents = st.builds(
    lambda product, major, minor, comment: f"{product}/{major}.{minor}" + (f" ({comment})" if comment else ""),
    _token.filter(lambda t: t[0].isalpha()),
    st.integers(0, 999),
    st.integers(0, 999),
    st.one_of(st.none(), st.lists(_token, min_size=1, max_size=4).map("; ".join)),
)
user_ids = st.one_of(opaque_ids, st.integers(min_value=10**6, max_value=10**15))


@st.composite
def events(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A native event with personal values, and those values as text."""
    device = {
        "platform": draw(st.sampled_from(["ios", "android"])),
        "id": draw(st.one_of(uuids, opaque_ids)),
        "advertising_id": draw(st.one_of(uuids, opaque_ids)),
        "kochava_device_id": draw(opaque_ids),
        "ip": draw(ips),
        "user_agent": draw(user_agents),
    }
    event = {"uuid": "evt-1", "type": "track", "event": "Purchase", "timestamp": 1795176000, "device": device}
    event["user_id"] = draw(user_ids)
    values = [str(v) for k, v in device.items() if k != "platform"] + [str(event["user_id"])]
    return event, values


def renderings(event: dict[str, Any]) -> list[str]:
    device = event["device"]
    flat = " ".join(f"device.{k}={v}" for k, v in device.items()) + f" user_id={event['user_id']}"
    quoted = ", ".join(f'{k}="{v}"' for k, v in device.items() if k != "id") + f', userId="{event["user_id"]}"'
    return [json.dumps(event), repr(event), flat, quoted, f"rejected: {event!r}"]


# The fixed text of the renderings and of the masks: a value that happens to be part of it proves nothing.
SKELETON = (
    json.dumps({"uuid": "evt-1", "type": "track", "event": "Purchase", "timestamp": 1795176000})
    + " rejected: device. platform ios android id advertising_id kochava_device_id ip user_agent user_id userId"
    + " <redacted> <ip> <user-agent> <id:sha256: <token:sha256: <email>"
).lower()


@settings(max_examples=200, deadline=None)
@given(events())
def test_no_personal_value_of_an_event_survives_masking(drawn: tuple[dict[str, Any], list[str]]) -> None:
    event, values = drawn
    assume(not any(v.lower() in SKELETON for v in values))
    for text in renderings(event):
        masked = redact(text, limit=100_000)
        for value in values:
            for spelling in {value, value.lower(), value.upper()}:
                assert spelling not in masked, (value, text, masked)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('{"user_id": 90817263, "event": "x"}', "90817263"),  # numeric ids
        ("user_id=u-42 rejected", "u-42"),  # key=value
        ("userId='Jo Doe'", "Jo Doe"),  # quoted
        ("{'device': {'platform': 'ios', 'id': 'my-device-7'}}", "my-device-7"),  # device.id in a repr
        ("UA was MyShop/7.3.1 (Pixel 8; Android 14)", "MyShop/7.3.1"),  # any user agent
        ("device_ua=okhttp%2F4.12.0", "okhttp"),
    ],
)
def test_issue_22_forms_are_masked(text: str, secret: str) -> None:
    """The forms the audit found unmasked (they came out as is before)."""
    assert secret not in redact(text)


def test_ordinary_text_is_kept() -> None:
    for text in ("HTTP/1.1 400 Bad Request", "POST /v1/events 202", "device.platform: must be ios or android"):
        assert redact(text) == text


def test_the_enricher_logs_a_failed_message_without_the_exceptions_raw_text() -> None:
    """The enricher's handler used logger.exception: the traceback repeated the exception message raw."""
    from functions.enricher import handler
    from functions.enricher.runtime import Runtime

    class Boom:
        def process(self, *args: Any) -> Any:
            raise ValueError("could not hand off {'user_id': 'u-secret-42', 'ip': '203.0.113.9'} user_id=u-secret-42")

    class Context:
        def get_remaining_time_in_millis(self) -> int:
            return 10_000

    record = {"messageId": "m-1", "body": "{}", "messageAttributes": {}}
    # The logger's own handler keeps the stdout of whichever test built it first, so capsys may see nothing: read
    # the formatted lines through a handler of our own, with the logger's formatter.
    logs = io.StringIO()
    capture = logging.StreamHandler(logs)
    capture.setFormatter(handler.logger.registered_handler.formatter)
    handler.logger.addHandler(capture)
    try:
        with pytest.raises(ValueError, match="could not hand off"):
            handler.process_record(Runtime(core=Boom()), record, Context())  # type: ignore[arg-type]
    finally:
        handler.logger.removeHandler(capture)
    logged = logs.getvalue()
    assert "message not fully handed off" in logged and "ValueError" in logged
    assert "u-secret-42" not in logged and "203.0.113.9" not in logged
    assert "Traceback" not in logged


def test_exception_fields_name_the_frames_not_the_values() -> None:
    try:
        raise KeyError("user_id=u-7 203.0.113.5")
    except KeyError as exc:
        fields = exception_fields(exc)
    assert fields["error"] == "KeyError"
    assert "u-7" not in str(fields) and "203.0.113.5" not in str(fields)
    assert any("test_exception_fields_name_the_frames_not_the_values" in w for w in fields["where"])  # type: ignore[attr-defined]

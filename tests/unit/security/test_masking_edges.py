"""What a log line shows of a masked value (``functions/pipeline/masking.py``), at the edges the property tests of
``test_masking_properties.py`` do not pin: the exact placeholders (on-call greps for them, and matches two lines
by a fingerprint), the length limit, and where an exception was raised."""

from __future__ import annotations

import inspect

from functions.pipeline.masking import exception_fields, fingerprint, redact


def test_an_ipv6_address_becomes_the_ip_placeholder() -> None:
    assert redact("from 2001:db8::1 refused") == "from <ip> refused"


def test_a_token_or_a_hex_id_becomes_its_own_fingerprint_whatever_its_case() -> None:
    token = "Tk9UX0FfUkVBTF9UT0tFTl9idXRfbG9uZ19lbm91Z2g" + "x" * 10
    assert redact(f"token {token}") == f"token <token:{fingerprint(token)}>"
    android_id = "A1B2C3D4E5F60718"
    masked = f"<id:{fingerprint(android_id.lower())}>"
    assert redact(android_id) == redact(android_id.lower()) == masked
    assert redact("a1b2c3d4e5f60719") != masked  # another id, another fingerprint


def test_the_limit_is_the_most_characters_kept() -> None:
    assert redact("a b " * 128) == "a b " * 128  # 512 characters
    assert redact("a b " * 128 + "c") == "a b " * 128 + "..."
    assert redact("zz " * 7, limit=10) == "zz zz zz z..."


def test_a_device_object_s_id_is_masked_wherever_it_is_written() -> None:
    assert redact('{"device": {"id": "dev-1", "model": "Pixel 8"}}') == (
        '{"device": {"id": "<redacted>", "model": "Pixel 8"}}'
    )
    assert redact("{'device': {'id': 'dev-1'}}") == "{'device': {'id': '<redacted>'}}"


def test_a_masked_value_keeps_the_quoting_of_its_text() -> None:
    assert redact('{"user_id": 42}') == '{"user_id": "<redacted>"}'
    assert redact("{'user_id': 42}") == "{'user_id': '<redacted>'}"
    assert redact("user_id=42") == "user_id=<redacted>"
    assert redact('{"user_id": "None"}') == '{"user_id": "<redacted>"}'  # a string is a value, whatever it says


def test_literals_and_prose_after_a_personal_key_are_left_alone() -> None:
    for text in ("user_id=None", "user_id=NULL", "user_id=False", "user_id: unknown in this request"):
        assert redact(text) == text


def _raise_deep(depth: int) -> None:
    if depth:
        _raise_deep(depth - 1)
    raise KeyError("user_id=u-42")


def test_an_exception_is_located_by_file_line_and_function_innermost_last() -> None:
    try:
        _raise_deep(12)
    except KeyError as exc:
        fields = exception_fields(exc)
    first = inspect.getsourcelines(_raise_deep)[1]
    recurse, raised = (
        f"test_masking_edges.py:{first + 2} in _raise_deep",
        f"test_masking_edges.py:{first + 3} in _raise_deep",
    )
    assert fields["where"] == [recurse] * 7 + [raised]  # the last eight frames, innermost last
    assert fields["detail"] == "'user_id=<redacted>'"

"""Compact JSON text of any parsed value, never raising for depth: orjson first, the standard library after it.

orjson writes at most 254 levels of nesting, but the body parsers read deeper (orjson up to 1024 levels), so a
value that was read can still be refused when it is written back: a ``properties`` list sent to Kochava as text,
or a raw event written to a DLQ. Raising there would fail the event's whole SQS message on every retry. A deeper
value is written by the standard library (the same compact text), and one too deep even for that becomes
``TOO_DEEP_TEXT``.

A string holding an unpaired UTF-16 surrogate (read from an escaped ``"\ud800"`` by the lenient parser) cannot be
encoded as UTF-8, so orjson refuses it and SQS could not carry it: it is written back as the escape it was read
from (:func:`escape_surrogates`), which is valid JSON text that reads back to the same value.

Example:
    >>> compact_json([1, "é", {"a": 2.5}])
    '[1,"é",{"a":2.5}]'
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

TOO_DEEP_TEXT = "[nested too deeply to send]"


def compact_json(value: Any) -> str:
    """``orjson.dumps(value).decode()``, or the standard library's identical compact text when orjson refuses."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: "Recursion limit reached"
        try:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (RecursionError, ValueError):
            return TOO_DEEP_TEXT
        return escape_surrogates(text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_surrogates(text: str) -> str:
    r"""``text`` with every unpaired surrogate written as its JSON / Python escape, so it can be encoded as UTF-8
    (an SQS attribute, a terminal) and still says exactly what was received.

    >>> escape_surrogates("k\ud800"), escape_surrogates("plain é")
    ('k\\ud800', 'plain é')
    """
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)

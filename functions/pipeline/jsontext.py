"""Compact JSON text of any parsed value, never raising for depth: orjson first, the standard library after it.

orjson writes at most 254 levels of nesting, but the body parsers read deeper (orjson up to 1024 levels), so a
value that was read can still be refused when it is written back: a ``properties`` list sent to Kochava as text,
or a raw event written to a DLQ. Raising there would fail the event's whole SQS message on every retry. A deeper
value is written by the standard library (the same compact text), and one too deep even for that becomes
``TOO_DEEP_TEXT``.

Example:
    >>> compact_json([1, "é", {"a": 2.5}])
    '[1,"é",{"a":2.5}]'
"""

from __future__ import annotations

import json
from typing import Any

import orjson

TOO_DEEP_TEXT = "[nested too deeply to send]"


def compact_json(value: Any) -> str:
    """``orjson.dumps(value).decode()``, or the standard library's identical compact text when orjson refuses."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: "Recursion limit reached"
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        except (RecursionError, ValueError):
            return TOO_DEEP_TEXT

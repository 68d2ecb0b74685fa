"""What keeps the on-call tools (``tools.dlq``, ``tools.trace``, ``tools.privacy``) from crashing on what the
pipeline can store, and on a closed pipe.

* **Bodies**: a DLQ can hold any body the API accepted (the enricher dead-letters what is not JSON as
  ``invalid_json``, whatever it is: 10,000 brackets deep, 256 KiB, bytes that are not UTF-8 shown as escapes).
  :func:`loads` parses a body as JSON only when it is nested at most :data:`MAX_DEPTH` deep; anything deeper is
  treated as text, so no tool recurses into it (Python's ``json`` raises ``RecursionError`` at about 1,000 levels,
  and the tools' own walkers would run out of stack sooner).
* **DynamoDB numbers** come back as :class:`decimal.Decimal` (boto3); :func:`epoch_ms` takes any number or text
  and never raises.
* **Closed pipes**: ``python -m tools.trace ... | head`` must end quietly: :func:`run` calls a tool's ``main``
  and, when the reader went away, points stdout at ``/dev/null`` (so the interpreter's final flush cannot raise
  again) and exits 141 (128 + SIGPIPE, as a shell reports a command killed by a closed pipe).

Example:
    >>> loads('{"a": [1, 2]}')
    ({'a': [1, 2]}, True)
    >>> loads("[" * 10_000 + "]" * 10_000)[1], loads("not json")
    (False, (None, False))
    >>> epoch_ms(Decimal("1764000000000")), epoch_ms("x"), epoch_ms(float("nan"))
    (1764000000000, None, None)
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

MAX_DEPTH: Final = 64  # deeper JSON is shown as text (no event of the contract nests near this)
EXIT_BROKEN_PIPE: Final = 141

_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET: Final = re.compile(r"[\[\]{}]")


def depth(text: str) -> int:
    """How deep JSON text nests (brackets outside strings), without parsing it (no recursion).

    >>> depth('{"a": "[[[", "b": [[1]]}'), depth("x")
    (3, 0)
    """
    deepest = level = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        level += 1 if match.group(0) in "[{" else -1
        deepest = max(deepest, level)
    return deepest


def loads(text: str | bytes) -> tuple[Any, bool]:
    """``(value, True)`` for JSON nested at most :data:`MAX_DEPTH` deep, else ``(None, False)``; never raises."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    try:
        if depth(text) > MAX_DEPTH:
            return None, False
        return json.loads(text), True
    except (ValueError, RecursionError):
        return None, False


def epoch_ms(value: Any) -> int | None:
    """An epoch-milliseconds value as stored (int, float, Decimal, numeric text) as an int; None when it is not a
    finite number."""
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value)) if isinstance(value, str) else value
        if isinstance(number, Decimal | int | float) and math.isfinite(float(number)):
            return int(number)
    except (InvalidOperation, ValueError, OverflowError, TypeError):
        return None
    return None


def iso(ms: Any) -> str | None:
    """Epoch ms (an int, a DynamoDB ``Decimal``, numeric text) -> ``2026-11-30T09:00:00Z``; None stays None, and
    what is not a plausible time is shown as it is.

    >>> iso(Decimal("1764493200000")), iso(None), iso(10**30), iso("soon")
    ('2025-11-30T09:00:00Z', None, '1000000000000000000000000000000', 'soon')
    """
    if ms is None:
        return None
    millis = epoch_ms(ms)
    if millis is None:
        return str(ms)
    try:
        return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return str(ms)


def run(main: Callable[[], int]) -> int:
    """``main()``'s exit code; 141 and no traceback when stdout's reader went away (``| head``)."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code

"""Durations as on-call people type them (``--older-than 2h``, ``--since 3d``): pure, shared by the tools.

Example:
    >>> parse_duration("1h30m"), parse_duration("1w")
    (5400.0, 604800.0)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

_HOUR: Final = 3600.0
_DAY: Final = 24 * _HOUR
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_DURATION_UNITS: Final[Mapping[str, float]] = {"s": 1.0, "m": 60.0, "h": _HOUR, "d": _DAY, "w": 7 * _DAY}


def parse_duration(text: str) -> float:
    """``30m``, ``2h``, ``3d``, ``1h30m``, ``1w`` -> seconds; ValueError on anything else."""
    compact = text.strip().lower()
    if not compact or _DURATION_PART.sub("", compact):
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 2h, 3d, 1h30m)")
    return sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(compact))

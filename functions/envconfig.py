"""Reading a Lambda's own environment variables into typed values, with errors that name the variable.

Both handlers' configs (``functions/enricher/config.py``, ``functions/deliverer/config.py``) are built with these,
once per container; the variable names are the ``ENV_*`` constants of :mod:`functions.names`.

Example:
    >>> env = {"A": " https://q ", "N": "12", "S": "0.5"}
    >>> required(env, "A"), optional(env, "B"), positive_int(env, "N", 1), positive_float(env, "S", 30.0)
    ('https://q', None, 12, 0.5)
    >>> positive_int({"N": "0"}, "N", 1)
    Traceback (most recent call last):
    ...
    ValueError: N: must be a positive integer, got '0'
"""

from __future__ import annotations

import math
from collections.abc import Mapping


def missing(env: Mapping[str, str], *names: str) -> list[str]:
    """The names among ``names`` that are unset or blank."""
    return [name for name in names if not env.get(name, "").strip()]


def required(env: Mapping[str, str], name: str) -> str:
    """The stripped value of ``name``; ``ValueError`` when it is unset or blank."""
    value = env.get(name, "").strip()
    if not value:
        raise ValueError(f"missing environment variable: {name}")
    return value


def optional(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value of ``name``, or None when it is unset or blank."""
    return env.get(name, "").strip() or None


def positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    """A whole number >= 1, or ``default`` when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name}: must be a positive integer, got {raw!r}")
    return int(raw)


def positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    """A finite number > 0 (seconds, may be fractional), or ``default`` when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ValueError(f"{name}: must be a positive number of seconds, got {raw!r}")
    return value

"""Reading a Lambda's own environment variables into typed values, and the one configuration error.

One pattern for every configuration of the repository: a frozen typed object built once by a ``from_env(env)``
(``from_context(get)`` for the CDK app) classmethod that reads a mapping it is given (never ``os.environ`` itself)
and raises :class:`ConfigError` naming the variable or context key: :class:`functions.pipeline.settings.Settings`,
:class:`functions.enricher.config.EnricherConfig`, :class:`functions.deliverer.config.DelivererConfig`,
:class:`functions.authorizer.config.AuthorizerConfig` and :class:`infra.config.PipelineConfig`. The variable names
are the ``ENV_*`` constants of :mod:`functions.names`. Standard library only: the authorizer uses it too.

Example:
    >>> env = {"A": " https://q ", "N": "12", "S": "0.5"}
    >>> required(env, "A"), optional(env, "B"), positive_int(env, "N", 1), positive_float(env, "S", 30.0)
    ('https://q', None, 12, 0.5)
    >>> positive_int({"N": "0"}, "N", 1)
    Traceback (most recent call last):
    ...
    functions.envconfig.ConfigError: N: must be a positive integer, got '0'
    >>> comma_list({"P": " /v1/a, ,/v1/b"}, "P")
    ['/v1/a', '/v1/b']
"""

from __future__ import annotations

import math
from collections.abc import Mapping


class ConfigError(ValueError):
    """A setting (an environment variable, a CDK context key) is missing or malformed; the message names it."""


def require(env: Mapping[str, str], *names: str) -> None:
    """Raise :class:`ConfigError` naming every one of ``names`` that is unset or blank."""
    absent = missing(env, *names)
    if absent:
        raise ConfigError(f"missing environment variable(s): {', '.join(absent)}")


def missing(env: Mapping[str, str], *names: str) -> list[str]:
    """The names among ``names`` that are unset or blank."""
    return [name for name in names if not env.get(name, "").strip()]


def required(env: Mapping[str, str], name: str) -> str:
    """The stripped value of ``name``; :class:`ConfigError` when it is unset or blank."""
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"missing environment variable: {name}")
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
        raise ConfigError(f"{name}: must be a positive integer, got {raw!r}")
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
        raise ConfigError(f"{name}: must be a positive number of seconds, got {raw!r}")
    return value


def comma_list(env: Mapping[str, str], name: str) -> list[str]:
    """The non-blank items of a comma-separated ``name``, stripped (none when unset)."""
    return [item.strip() for item in env.get(name, "").split(",") if item.strip()]

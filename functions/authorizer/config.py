"""The authorizer's settings, read once from its environment (the stack sets them from ``functions.names``).

Standard library only and no import of ``functions.names`` (whose dataclasses would double this function's import
cost); read with :mod:`functions.envconfig` like every other configuration (standard library only too, bundled with
the authorizer). The stack passes the path table in two variables, ``API_KEY_PATHS`` and ``BASIC_AUTH_PATHS``
(comma-separated), built from ``functions.names.INGEST_PATHS``; ``tests/unit/test_authorizer.py`` checks the names.

Example:
    >>> config = AuthorizerConfig.from_env({"API_KEY_PATHS": "/v1/events", "BASIC_AUTH_PATHS": "/v1/batch,/v1/track"})
    >>> sorted(config.basic_auth_paths), config.log_level
    (['/v1/batch', '/v1/track'], 'INFO')
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from functions import envconfig

ENV_API_KEY_PATHS = "API_KEY_PATHS"  # the paths whose key is the x-api-key header
ENV_BASIC_AUTH_PATHS = "BASIC_AUTH_PATHS"  # the paths whose key is the HTTP Basic auth user name
ENV_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"  # the same variable (logLevel) the other functions read
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class AuthorizerConfig:
    """Which header carries the key on which path, and the log level."""

    __slots__ = ("api_key_paths", "basic_auth_paths", "log_level")

    def __init__(self, api_key_paths: Iterable[str], basic_auth_paths: Iterable[str], log_level: str = "INFO") -> None:
        self.api_key_paths = frozenset(api_key_paths)
        self.basic_auth_paths = frozenset(basic_auth_paths)
        self.log_level = log_level

    @classmethod
    def for_paths(cls, ingest_paths: Iterable[Any], log_level: str = "INFO") -> AuthorizerConfig:
        """From ``functions.names.INGEST_PATHS`` (``.path``, ``.segment_api``): what the stack and tools.local use."""
        paths = list(ingest_paths)
        return cls([p.path for p in paths if not p.segment_api], [p.path for p in paths if p.segment_api], log_level)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AuthorizerConfig:
        """Read ``API_KEY_PATHS``, ``BASIC_AUTH_PATHS`` (comma lists) and the log level (an unknown one: INFO)."""
        level = (envconfig.optional(env, ENV_LOG_LEVEL) or "").upper()
        return cls(
            envconfig.comma_list(env, ENV_API_KEY_PATHS),
            envconfig.comma_list(env, ENV_BASIC_AUTH_PATHS),
            level if level in LOG_LEVELS else "INFO",
        )

    def environment(self) -> dict[str, str]:
        """The variables :meth:`from_env` reads back (what the stack sets on the function)."""
        return {
            ENV_API_KEY_PATHS: ",".join(sorted(self.api_key_paths)),
            ENV_BASIC_AUTH_PATHS: ",".join(sorted(self.basic_auth_paths)),
            ENV_LOG_LEVEL: self.log_level,
        }

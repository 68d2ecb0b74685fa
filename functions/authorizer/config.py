"""The authorizer's settings, read once from its environment (the stack sets them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from functions.names import ENV_POWERTOOLS_LOG_LEVEL

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class AuthorizerConfig:
    """``log_level``: the stack's ``logLevel`` (the same variable the other functions read).

    >>> AuthorizerConfig.from_env({"POWERTOOLS_LOG_LEVEL": "debug"}).log_level
    'DEBUG'
    >>> AuthorizerConfig.from_env({}).log_level
    'INFO'
    """

    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AuthorizerConfig:
        level = environ.get(ENV_POWERTOOLS_LOG_LEVEL, "").strip().upper()
        return cls(log_level=level if level in LOG_LEVELS else cls.log_level)

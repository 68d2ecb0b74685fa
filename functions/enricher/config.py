"""The enricher's own configuration, read once per container from its environment.

The shared mapping settings (app GUIDs, URLs, filtered events...) are :class:`functions.pipeline.settings.Settings`;
this is what only the enricher needs: its queues, the device-profile table and how long a profile is kept.

Example:
    >>> config = EnricherConfig.from_env({"INGEST_QUEUE_URL": "q-in", "INGEST_DLQ_URL": "q-dlq",
    ...                                   "DELIVERY_QUEUE_URL": "q-out", "PROFILE_TTL_DAYS": "90"})
    >>> config.delivery_queue_url, config.profile_table, config.profile_ttl_s // 86400
    ('q-out', None, 90)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from functions import envconfig
from functions.names import (
    ENV_DELIVERY_QUEUE_URL,
    ENV_INGEST_DLQ_URL,
    ENV_INGEST_QUEUE_URL,
    ENV_PROFILE_TABLE,
    ENV_PROFILE_TTL_DAYS,
    PROFILE_TTL_S,
)

DAY_S = 24 * 3600


@dataclass(frozen=True)
class EnricherConfig:
    """Queue URLs, the profile table (None: no device profiles) and the profile TTL."""

    ingest_queue_url: str
    ingest_dlq_url: str
    delivery_queue_url: str
    profile_table: str | None = None
    profile_ttl_s: int = PROFILE_TTL_S

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EnricherConfig:
        """Read ``INGEST_QUEUE_URL``, ``INGEST_DLQ_URL``, ``DELIVERY_QUEUE_URL`` (required), ``PROFILE_TABLE_NAME``
        and ``PROFILE_TTL_DAYS`` (optional); raise :class:`~functions.envconfig.ConfigError` naming what is wrong."""
        envconfig.require(env, ENV_INGEST_QUEUE_URL, ENV_INGEST_DLQ_URL, ENV_DELIVERY_QUEUE_URL)
        return cls(
            ingest_queue_url=envconfig.required(env, ENV_INGEST_QUEUE_URL),
            ingest_dlq_url=envconfig.required(env, ENV_INGEST_DLQ_URL),
            delivery_queue_url=envconfig.required(env, ENV_DELIVERY_QUEUE_URL),
            profile_table=envconfig.optional(env, ENV_PROFILE_TABLE),
            profile_ttl_s=envconfig.positive_int(env, ENV_PROFILE_TTL_DAYS, PROFILE_TTL_S // DAY_S) * DAY_S,
        )

"""The deployment's configuration: CDK context keys (``cdk.json`` or ``-c key=value``) read into one typed object.

Every key is documented in ``docs/deploy.md``. Values given with ``-c`` arrive as strings, values from ``cdk.json``
as JSON types; :meth:`PipelineConfig.from_context` accepts both and fails with a message naming the key.

Example:
    >>> config = PipelineConfig.from_context({"stage": "prod", "maxReceiveCount": "3", "authMode": "iam"}.get)
    >>> config.stage, config.max_receive_count, config.auth_mode
    ('prod', 3, 'iam')
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from functions.envconfig import ConfigError as ConfigError  # the one configuration error (re-exported)
from functions.names import DELIVERY_QUEUE, INGEST_QUEUE, PROFILE_TTL_S
from functions.pipeline import sources

AuthMode = Literal["apiKey", "iam"]
AUTH_MODES: tuple[AuthMode, ...] = ("apiKey", "iam")
QUOTA_PERIODS = ("DAY", "WEEK", "MONTH")
# The retention periods CloudWatch Logs accepts, in days, and their name in aws_cdk.aws_logs.RetentionDays.
LOG_RETENTION_DAYS = {
    1: "ONE_DAY", 3: "THREE_DAYS", 5: "FIVE_DAYS", 7: "ONE_WEEK", 14: "TWO_WEEKS", 30: "ONE_MONTH",
    60: "TWO_MONTHS", 90: "THREE_MONTHS", 120: "FOUR_MONTHS", 150: "FIVE_MONTHS", 180: "SIX_MONTHS",
    365: "ONE_YEAR", 400: "THIRTEEN_MONTHS", 545: "EIGHTEEN_MONTHS", 731: "TWO_YEARS", 1096: "THREE_YEARS",
    1827: "FIVE_YEARS", 2192: "SIX_YEARS", 2557: "SEVEN_YEARS", 2922: "EIGHT_YEARS", 3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}  # fmt: skip
_STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,19}$")

ContextGetter = Callable[[str], Any]


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a deployment can choose; defaults are what ``cdk deploy`` without ``-c`` gets."""

    stage: str = "dev"
    # Kochava app GUIDs: per platform, and per bundle id (wins over the platform GUID). Empty: not configured,
    # events for that platform are dead-lettered with reason `missing_app_id` (replayable after a config deploy).
    kochava_app_id_ios: str = ""
    kochava_app_id_android: str = ""
    kochava_app_ids_by_bundle: dict[str, str] = field(default_factory=dict)
    # Without a GUID per platform (or per bound bundle) the deploy is refused (infra/deploy_guard.py); true: warned.
    allow_missing_app_ids: bool = False
    # Empty: the Lambdas use their built-in defaults (functions/pipeline/settings.py).
    kochava_url: str = ""
    kochava_identitylink_url: str = ""
    filtered_events: str | None = None  # comma list; None: the Lambda default ("heartbeat")
    event_name_map: dict[str, str] = field(default_factory=dict)
    adservices_url: str = ""  # empty: Apple's production endpoint (the Lambda default)
    adservices_resolve: bool = True
    alarm_email: str = ""
    auth_mode: AuthMode = "apiKey"
    throttle_rate_limit: float = 500.0  # requests per second, steady state (usage plan and stage)
    throttle_burst_limit: int = 1000
    quota_limit: int = 0  # requests per quota period per API key; 0: no quota
    quota_period: str = "DAY"
    max_receive_count: int = INGEST_QUEUE.max_receive_count  # the ingest queue's
    # The delivery queue's: high, a record held through a Kochava outage is received once per hold (<= 1000, SQS).
    delivery_max_receive_count: int = DELIVERY_QUEUE.max_receive_count
    deliverer_max_concurrency: int = 5  # concurrent deliverer invocations (SQS event source maximum concurrency)
    # Concurrent enricher invocations: a flood of ingest cannot take every Lambda slot from the deliverer.
    enricher_max_concurrency: int = 20
    deliverer_max_workers: int = 10  # HTTP requests in flight per deliverer invocation
    queue_age_alarm_seconds: int = 300  # alarm when the oldest message of a queue is older than this
    log_retention_days: int = 30
    log_level: str = "INFO"  # the Lambdas' Powertools log level
    api_execution_log_level: str = "ERROR"  # API Gateway execution logging: ERROR or INFO (never bodies)
    retain_tables: bool = True  # keep the DynamoDB tables when the stack is deleted
    # Days a device profile is kept after the device was last seen (docs/privacy.md recommends 90 where the
    # pipeline's server-side events follow the app's own within weeks), and days of point-in-time recovery of the
    # profile table (1..35: what an erase cannot reach, so keep it short).
    profile_ttl_days: int = PROFILE_TTL_S // (24 * 3600)
    profile_backup_days: int = 35
    # API keys bound to the Kochava apps they may send to: key name -> bundle ids or app GUIDs, each resolving to a
    # configured GUID (checked here: the enricher decides on the GUID an event goes to). The stack creates one API
    # key (in the usage plan) per name, next to the default key, and gives the enricher SOURCE_APPS (key id -> apps).
    source_apps: dict[str, list[str]] = field(default_factory=dict)
    # Once any key is bound, keys that are not (the default key) may send nothing (True) or to any app (False).
    require_bound_keys: bool = True
    # Seconds API Gateway caches the API key authorizer's answer per key (0: no cache, the authorizer runs on
    # every request); at most 3600.
    authorizer_cache_seconds: int = 300

    @classmethod
    def from_context(cls, get: ContextGetter) -> PipelineConfig:
        """Read every key with ``get`` (e.g. ``app.node.try_get_context``); absent keys keep their defaults."""
        defaults = cls()
        config = cls(
            stage=_text(get, "stage", defaults.stage),
            kochava_app_id_ios=_text(get, "kochavaAppIdIos", defaults.kochava_app_id_ios),
            kochava_app_id_android=_text(get, "kochavaAppIdAndroid", defaults.kochava_app_id_android),
            kochava_app_ids_by_bundle=_string_map(get, "kochavaAppIdsByBundle"),
            allow_missing_app_ids=_boolean(get, "allowMissingAppIds", defaults.allow_missing_app_ids),
            kochava_url=_text(get, "kochavaUrl", defaults.kochava_url),
            kochava_identitylink_url=_text(get, "kochavaIdentityLinkUrl", defaults.kochava_identitylink_url),
            filtered_events=_optional_text(get, "filteredEvents"),
            event_name_map=_string_map(get, "eventNameMap"),
            adservices_url=_text(get, "adservicesUrl", defaults.adservices_url),
            adservices_resolve=_boolean(get, "adservicesResolve", defaults.adservices_resolve),
            alarm_email=_text(get, "alarmEmail", defaults.alarm_email),
            auth_mode=_auth_mode(get),
            throttle_rate_limit=_number(get, "throttleRateLimit", defaults.throttle_rate_limit, minimum=1),
            throttle_burst_limit=_integer(get, "throttleBurstLimit", defaults.throttle_burst_limit, minimum=1),
            quota_limit=_integer(get, "quotaLimit", defaults.quota_limit, minimum=0),
            quota_period=_choice(get, "quotaPeriod", defaults.quota_period, QUOTA_PERIODS),
            max_receive_count=_integer(get, "maxReceiveCount", defaults.max_receive_count, minimum=1, maximum=1000),
            delivery_max_receive_count=_integer(
                get, "deliveryMaxReceiveCount", defaults.delivery_max_receive_count, minimum=10, maximum=1000
            ),
            # SQS event sources accept a maximum concurrency between 2 and 1000.
            enricher_max_concurrency=_integer(
                get, "enricherMaxConcurrency", defaults.enricher_max_concurrency, minimum=2, maximum=1000
            ),
            deliverer_max_concurrency=_integer(
                get, "delivererMaxConcurrency", defaults.deliverer_max_concurrency, minimum=2, maximum=1000
            ),
            deliverer_max_workers=_integer(
                get, "delivererMaxWorkers", defaults.deliverer_max_workers, minimum=1, maximum=100
            ),
            queue_age_alarm_seconds=_integer(get, "queueAgeAlarmSeconds", defaults.queue_age_alarm_seconds, minimum=60),
            log_retention_days=_integer(get, "logRetentionDays", defaults.log_retention_days, minimum=1),
            log_level=_choice(get, "logLevel", defaults.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
            api_execution_log_level=_choice(
                get, "apiExecutionLogLevel", defaults.api_execution_log_level, ("ERROR", "INFO")
            ),
            retain_tables=_boolean(get, "retainTables", defaults.retain_tables),
            profile_ttl_days=_integer(get, "profileTtlDays", defaults.profile_ttl_days, minimum=1, maximum=3650),
            profile_backup_days=_integer(get, "profileBackupDays", defaults.profile_backup_days, minimum=1, maximum=35),
            source_apps=parse_source_apps(_raw(get, "sourceApps")),
            require_bound_keys=_boolean(get, "requireBoundKeys", defaults.require_bound_keys),
            authorizer_cache_seconds=_integer(
                get, "authorizerCacheSeconds", defaults.authorizer_cache_seconds, minimum=0, maximum=3600
            ),
        )
        if not _STAGE_PATTERN.match(config.stage):
            raise ConfigError(f"context 'stage': {config.stage!r} must be lower-case letters, digits, '-' (<= 20)")
        check_source_apps(config)
        for key, url in (
            ("kochavaUrl", config.kochava_url),
            ("kochavaIdentityLinkUrl", config.kochava_identitylink_url),
            ("adservicesUrl", config.adservices_url),
        ):
            if url and not url.lower().startswith("https://"):  # TLS only: device data never crosses in clear text
                raise ConfigError(f"context '{key}': {url!r} must be an https:// URL")
        if config.log_retention_days not in LOG_RETENTION_DAYS:
            allowed = ", ".join(map(str, LOG_RETENTION_DAYS))
            raise ConfigError(f"context 'logRetentionDays': {config.log_retention_days} is not one of {allowed}")
        return config

    @property
    def log_retention(self) -> str:
        """The ``aws_logs.RetentionDays`` member name of ``log_retention_days``."""
        return LOG_RETENTION_DAYS[self.log_retention_days]


def _raw(get: ContextGetter, key: str) -> Any:
    value = get(key)
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _text(get: ContextGetter, key: str, default: str) -> str:
    value = _raw(get, key)
    return default if value is None else str(value).strip()


def _optional_text(get: ContextGetter, key: str) -> str | None:
    value = get(key)
    return None if value is None else str(value).strip()


def _integer(get: ContextGetter, key: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    value = _raw(get, key)
    if value is None:
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"context '{key}': {value!r} is not an integer") from None
    if number < minimum or (maximum is not None and number > maximum):
        raise ConfigError(f"context '{key}': {number} is outside {minimum}..{maximum if maximum else ''}")
    return number


def _number(get: ContextGetter, key: str, default: float, *, minimum: float) -> float:
    value = _raw(get, key)
    if value is None:
        return default
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ConfigError(f"context '{key}': {value!r} is not a number") from None
    if number < minimum:
        raise ConfigError(f"context '{key}': {number} is below {minimum}")
    return number


def _boolean(get: ContextGetter, key: str, default: bool) -> bool:
    value = _raw(get, key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ConfigError(f"context '{key}': {value!r} is not true/false")


def _choice(get: ContextGetter, key: str, default: str, choices: tuple[str, ...]) -> str:
    value = _text(get, key, default)
    if value not in choices:
        raise ConfigError(f"context '{key}': {value!r} is not one of {', '.join(choices)}")
    return value


def _auth_mode(get: ContextGetter) -> AuthMode:
    value = _text(get, "authMode", "apiKey")
    for mode in AUTH_MODES:
        if value == mode:
            return mode
    raise ConfigError(f"context 'authMode': {value!r} is not one of {', '.join(AUTH_MODES)}")


def _string_map(get: ContextGetter, key: str) -> dict[str, str]:
    """A JSON object of strings, given as an object (cdk.json) or as a JSON string (``-c``)."""
    value = _raw(get, key)
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ConfigError(f"context '{key}': not valid JSON ({error})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f'context \'{key}\': must be a JSON object of strings, e.g. {{"com.example.app": "guid"}}')
    return dict(value)


_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def parse_source_apps(value: Any, key: str = "sourceApps") -> dict[str, list[str]]:
    """API key names -> the apps (bundle ids or Kochava app GUIDs) each may send to; an object or its JSON text.

    The setting's one parser is :func:`functions.pipeline.sources.parse_source_apps` (the Lambdas' ``SOURCE_APPS``
    too); here the names are also checked, as each becomes an API key name.

    >>> parse_source_apps('{"ios-backend": ["com.example.ios"]}')
    {'ios-backend': ['com.example.ios']}
    >>> parse_source_apps({"bad name": ["a"]})
    Traceback (most recent call last):
    ...
    functions.envconfig.ConfigError: context 'sourceApps': key name 'bad name' must be letters, digits, '-', '_' (<= 64)
    """
    label = key if key.startswith("-") else f"context '{key}'"  # a context key, or a command-line flag
    try:
        parsed = sources.parse_source_apps(value, label)
    except sources.SourceAppsError as exc:
        raise ConfigError(str(exc)) from None
    for name in parsed:
        if not _KEY_NAME.match(name):
            raise ConfigError(f"{label}: key name {name!r} must be letters, digits, '-', '_' (<= 64)")
    return {name: list(apps) for name, apps in parsed.items()}


def check_source_apps(config: PipelineConfig, key: str = "sourceApps") -> None:
    """Fail when a bound app resolves to no configured Kochava app GUID (the binding is decided on the GUID)."""
    problems = sources.unresolved_bindings(
        config.source_apps,
        app_ids_by_bundle=config.kochava_app_ids_by_bundle,
        platform_app_ids=(config.kochava_app_id_ios, config.kochava_app_id_android),
        label=f"context '{key}'",
        bundles_label="kochavaAppIdsByBundle",
    )
    if problems:
        raise ConfigError("; ".join(problems))

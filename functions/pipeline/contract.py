"""The ingest contract as pydantic v2 models: the native event and the Segment-spec event (spec section 2).

``NativeEvent`` is both the wire model of ``POST /v1/events`` and the pipeline's internal event: its validators
normalise every accepted form (aliases, timestamp formats, platform case) so the mapping sees one shape. The hot
path carries that event as plain data, its values (:func:`values_of`), validated by :data:`validate_native_values`,
a validator derived from the models' own core schemas (issue 27).
``SegmentEvent`` is the wire model of one mapped Segment call (track / screen / identify, with
``integrations.Kochava`` validated by the native models); ``functions.pipeline.events`` converts it into a
``NativeEvent``. Segment ``page`` / ``group`` / ``alias`` calls never reach it (``functions.pipeline.segment``).

The JSON schemas of the HTTP bodies are generated from this module (the Segment one checks only the envelope:
``python -m functions.pipeline.contract DIR``, i.e. ``make schemas``) and converted to JSON Schema draft 4, the
dialect API Gateway request models use.
A test regenerates them and fails on any drift from ``infra/schemas/``.

Example:
    >>> e = NativeEvent.model_validate({"uuid": "u1", "type": "track", "action": "level_up",
    ...     "timestamp": "2024-01-02 03:04:05", "device": {"platform": "iOS", "id": "idfv-1"}})
    >>> e.name, e.timestamp, e.device.platform
    ('level_up', 1704164645.0, 'ios')
"""

from __future__ import annotations

import copy
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import CoreSchema, SchemaValidator, core_schema

MIN_EPOCH_S = 946_684_800.0  # 2000-01-01: anything earlier is a client bug (or seconds sent as something else)
MAX_EPOCH_S = 4_102_444_800.0  # 2100-01-01
EPOCH_MS_THRESHOLD = 1e12  # numbers above this are milliseconds (spec section 2)
MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 8192
MAX_BATCH_EVENTS = 100  # events in one {"batch": [...]} body
_NAIVE_EPOCH = datetime(1970, 1, 1)  # naive on purpose: naive timestamps mean UTC


def parse_timestamp(value: Any) -> float:
    """Any accepted timestamp form -> epoch seconds (float, UTC).

    Accepts ISO-8601 (``Z`` or offset; naive means UTC), ``YYYY-MM-DD HH:MM:SS`` (UTC), epoch seconds and epoch
    milliseconds as numbers or numeric strings (values above 1e12 are milliseconds).

    >>> parse_timestamp("2020-07-10 15:00:00"), parse_timestamp(1594393200000), parse_timestamp("1594393200")
    (1594393200.0, 1594393200.0, 1594393200.0)
    >>> parse_timestamp("2020-07-10T17:00:00+02:00")
    1594393200.0
    """
    # Strings first: nearly every timestamp is one, and a str is neither a bool nor a number, so testing it first
    # changes no result and saves two isinstance calls per timestamp (800 instructions per event in callgrind).
    if isinstance(value, str):
        text = value.strip()
        # "2024-..." can never be a float (a '-' right after four digits), so the common ISO / SQL forms skip the
        # float() attempt and the cost of its exception (seen in a profile of the hot path).
        if len(text) > 4 and text[4] == "-" and text[:4].isdigit():
            seconds = _date_text_seconds(text)
        else:
            try:
                seconds = float(text)
            except ValueError:
                seconds = _date_text_seconds(text)
    elif isinstance(value, bool):
        raise ValueError("must be a timestamp (ISO-8601, 'YYYY-MM-DD HH:MM:SS', epoch seconds or ms), got a boolean")
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        raise ValueError("must be a timestamp string or number")
    if seconds != seconds:  # NaN
        raise ValueError("must be a finite number")
    if seconds > EPOCH_MS_THRESHOLD:
        seconds /= 1000.0
    if not MIN_EPOCH_S <= seconds <= MAX_EPOCH_S:
        raise ValueError("is out of range (must be between 2000-01-01 and 2100-01-01)")
    return seconds


def _date_text_seconds(text: str) -> float:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"must be ISO-8601, 'YYYY-MM-DD HH:MM:SS' (UTC), or epoch seconds / ms, got {text[:40]!r}"
        ) from None
    if parsed.tzinfo is None:  # naive means UTC: exactly parsed.replace(tzinfo=UTC).timestamp(), without a copy
        return (parsed - _NAIVE_EPOCH).total_seconds()
    return parsed.timestamp()


Timestamp = Annotated[
    float,
    BeforeValidator(parse_timestamp),
    WithJsonSchema(
        {
            "type": ["string", "number"],
            "description": "ISO-8601, 'YYYY-MM-DD HH:MM:SS' (UTC), epoch seconds, or epoch milliseconds (> 1e12)",
        }
    ),
]


def lower_stripped(value: Any) -> Any:
    """The platform's Python rule (what :class:`_PlatformText` falls back to): a string stripped and lower-cased.

    >>> lower_stripped(" iOS "), lower_stripped(3)
    ('ios', 3)
    """
    return value.strip().lower() if isinstance(value, str) else value


def _id_to_str(value: Any) -> Any:
    """Backends send numeric ids now and then; ids are strings on the wire to Kochava."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# Platforms arrive as "ios", "iOS", "Android"...: any case is accepted, by the gateway (this pattern, as
# API Gateway's JSON schema has no case-insensitive enum) and by the model (lower-cased before the check).
_PLATFORM_SCHEMA = {
    "type": "string",
    "pattern": "^\\s*([iI][oO][sS]|[aA][nN][dD][rR][oO][iI][dD])\\s*$",
    "description": "ios or android (any case)",
}


@dataclass(frozen=True)
class _PlatformText:
    """The platform rule: ``lower_stripped`` before ``Literal["ios", "android"]``, with a string that is ``ios`` or
    ``android`` once stripped and lower-cased (nearly all of them) read in pydantic-core, no Python call (one per
    native event, issue 27). Anything else falls back to the Python rule itself, so a value the core's stripping
    reads otherwise (Python's ``strip`` also removes U+001C..U+001F) is decided as before; when both refuse, the one
    ``literal_error`` the Literal gave (tests/unit/pipeline/test_parse_fast_paths.py compares both rules)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        literal = core_schema.literal_schema(["ios", "android"])
        lowered = core_schema.str_schema(strict=True, strip_whitespace=True, to_lower=True)
        return core_schema.union_schema(
            [
                core_schema.chain_schema([lowered, literal]),
                core_schema.no_info_before_validator_function(lower_stripped, literal),
            ],
            mode="left_to_right",
            custom_error_type="literal_error",
            custom_error_context={"expected": "'ios' or 'android'"},
        )


Platform = Annotated[Literal["ios", "android"], _PlatformText(), WithJsonSchema(_PLATFORM_SCHEMA)]
Text = Annotated[str, Field(max_length=MAX_TEXT_LENGTH)]


def _empty_object(_: None) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class _NullIsEmpty:
    """``null`` read as ``{}`` in front of an object (``"properties": null`` is what some SDKs send): an object
    is validated by pydantic-core with no Python call (a ``mode="before"`` field validator called Python for every
    native event, issue 27); only a ``null`` calls :func:`_empty_object`. Anything else gets the one ``dict_type``
    error the object gave (tests/unit/pipeline/test_parse_fast_paths.py compares it with the field validator)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        null = core_schema.chain_schema(
            [core_schema.none_schema(), core_schema.no_info_plain_validator_function(_empty_object)]
        )
        return core_schema.union_schema([handler(source), null], mode="left_to_right", custom_error_type="dict_type")


Properties = Annotated[dict[str, Any], _NullIsEmpty(), WithJsonSchema({"type": "object", "additionalProperties": True})]
_ID_SCHEMA = {"type": ["string", "integer"], "minLength": 1, "maxLength": MAX_ID_LENGTH}


@dataclass(frozen=True)
class _IdText:
    """An id: a string, or an integer (not a bool) turned into its decimal string; then stripped and length-checked.

    The same rule as a ``BeforeValidator(_id_to_str)`` in front of a ``str``, built from pydantic-core schemas so
    a string id (nearly all of them) never calls into Python: a left-to-right union tries ``str`` first, then a
    strict ``int`` (which refuses bools and floats) converted by ``str``; when both refuse, one ``string_type``
    error, as the plain ``str`` gave. Four ids per event made this 4 Python calls per event (profiled), plus one
    Python ``max_length_validator`` each, which pydantic adds when a length constraint follows a BeforeValidator.
    Same values, same error types, locations and messages (fuzzed against the BeforeValidator version); only the
    ``input`` echoed by ``string_too_short`` for a whitespace-only id is the stripped ``''`` instead of ``' '``.
    """

    min_length: int | None = None
    max_length: int | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.chain_schema(
            [
                core_schema.union_schema(
                    [
                        core_schema.str_schema(),
                        core_schema.no_info_after_validator_function(str, core_schema.int_schema(strict=True)),
                    ],
                    mode="left_to_right",
                    custom_error_type="string_type",
                ),
                core_schema.str_schema(strip_whitespace=True, min_length=self.min_length, max_length=self.max_length),
            ]
        )


Identifier = Annotated[str, _IdText(min_length=1, max_length=MAX_ID_LENGTH), WithJsonSchema(_ID_SCHEMA)]
_OptionalIdText = Annotated[str, _IdText(max_length=MAX_ID_LENGTH)]
OptionalId = Annotated[
    _OptionalIdText | None,
    WithJsonSchema({"type": ["string", "integer", "null"], "maxLength": MAX_ID_LENGTH}),
]
AttStatus = Literal["authorized", "denied", "restricted", "not_determined"]


class _Model(BaseModel):
    # Unknown fields are ignored (backends add their own); a wrong type in a known field is an error.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class Att(_Model):
    """App Tracking Transparency answer on iOS 14+."""

    status: AttStatus | None = None
    time: Timestamp | None = None  # when the user answered the prompt
    duration: Annotated[float, Field(ge=0)] | None = None  # seconds the user took to answer


class Device(_Model):
    platform: Platform
    id: OptionalId = None  # iOS: IDFV; Android: Android ID
    advertising_id: OptionalId = None  # iOS: IDFA; Android: Google advertising id (ADID)
    kochava_device_id: OptionalId = None
    ip: Annotated[str, Field(max_length=64)] | None = None
    user_agent: Text | None = None
    model: Annotated[str, Field(max_length=256)] | None = None
    os_version: Annotated[str, Field(max_length=64)] | None = None
    limit_ad_tracking: bool | None = None
    att: Att | None = None


class App(_Model):
    # ``Field`` before ``BeforeValidator``: the length is then checked in the core ``str`` schema, not by one more
    # Python ``max_length_validator`` call (same errors to the user, same JSON schema).
    bundle_id: Annotated[str, Field(max_length=256)] | None = None
    version: Annotated[str, Field(max_length=64)] | None = None
    build: Annotated[str, Field(max_length=64), BeforeValidator(_id_to_str)] | None = None


class AdServices(_Model):
    token: Annotated[str, Field(max_length=MAX_TEXT_LENGTH)] | None = None
    generated_at: Timestamp | None = None  # when the app called AAAttribution.attributionToken()
    attribution: dict[str, Any] | None = None  # what the client already fetched from Apple


class Consent(_Model):
    """Google DMA consent signals, sent to Kochava as ``gdpr_privacy_consent``."""

    gdpr_applies: bool | None = None
    tc_string: Text | None = None
    ad_user_data: bool | None = None
    ad_personalization: bool | None = None


class InstallReferrer(_Model):
    referrer: Text
    click_time: Timestamp | None = None


EventType = Literal["install", "track", "screen", "identify"]


class NativeEvent(_Model):
    """One native event; also the pipeline's internal event (Segment events are converted into it)."""

    uuid: Identifier
    type: EventType
    name: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        default=None, validation_alias=AliasChoices("event", "action", "name")
    )
    timestamp: Timestamp
    properties: Properties = Field(
        default_factory=dict, validation_alias=AliasChoices("properties", "action_properties")
    )
    user_id: OptionalId = None
    session_id: OptionalId = None
    ref: Annotated[str, Field(max_length=256)] | None = None
    offset: float | None = None
    app: App | None = None
    device: Device
    adservices: AdServices | None = None
    iad_attribution_details: dict[str, Any] | None = None
    consent: Consent | None = None
    install_referrer: InstallReferrer | None = None

    @model_validator(mode="after")
    def _name_required_for_track(self) -> NativeEvent:
        native_event_rules(self.type, self.name, self.user_id)
        return self


def native_event_rules(event_type: str, name: str | None, user_id: str | None) -> None:
    """The rules of a native event across its fields (``NativeEvent``'s model validator, and the plain validator's
    after it, call this one function): raise ``ValueError`` naming the field."""
    if event_type == "track" and not name:
        raise ValueError("event: is required for track events (alias: action)")
    if event_type == "identify" and not user_id:
        raise ValueError("user_id: is required for identify events")


def _native_event_rules_plain(event: dict[str, Any]) -> dict[str, Any]:
    """:func:`native_event_rules` on an event validated into plain data (:data:`validate_native_values`)."""
    native_event_rules(event["type"], event["name"], event["user_id"])
    return event


class NativeBatch(_Model):
    batch: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


# --- Segment spec ------------------------------------------------------------------------------------------------
# The Segment routes take what Segment's and RudderStack's libraries send. The gateway checks only the envelope
# (a JSON object; ``batch`` an array of 1 to 100 objects): each call is judged here, on its own, by the enricher.
# Call types the pipeline does not map (``page``, ``group``, ``alias``) are filtered before these models see them
# (functions.pipeline.segment). Field names are Segment's (camelCase), as are the names in error messages.

_Name = Annotated[str, Field(max_length=256)]
_Short = Annotated[str, Field(max_length=64)]


class SegmentDevice(_Model):
    # ``type`` is checked by SegmentEvent: "ios" / "android" (any case), else context.os.name decides (Segment's
    # iOS library does not fill device.type), so a non-mobile value such as "phone" is not an error by itself.
    type: _Short | None = None
    id: OptionalId = None  # iOS: IDFV; Android: Android ID
    advertisingId: OptionalId = None  # iOS: IDFA; Android: Google advertising id
    advertising_id: OptionalId = None  # the spelling of Segment's own Kochava page; advertisingId wins
    adTrackingEnabled: bool | None = None  # false: limit ad tracking
    model: _Name | None = None
    manufacturer: _Name | None = None  # accepted, not sent: Kochava's device_ver is model + OS
    attTrackingStatus: Annotated[int, Field(ge=0, le=3)] | None = None  # ATTrackingManager status, 3 = authorized


class SegmentOS(_Model):
    name: _Short | None = None
    version: _Short | None = None


class SegmentApp(_Model):
    name: _Name | None = None  # accepted, not sent (Kochava knows the app by its GUID)
    version: _Short | None = None
    build: Annotated[str, Field(max_length=64), BeforeValidator(_id_to_str)] | None = None
    namespace: _Name | None = None  # the bundle id / package name


class SegmentContext(_Model):
    device: SegmentDevice | None = None
    os: SegmentOS | None = None
    app: SegmentApp | None = None
    ip: Annotated[str, Field(max_length=64)] | None = None
    userAgent: Text | None = None
    locale: _Short | None = None  # accepted, not sent: Kochava's S2S APIs have no locale field
    traits: dict[str, Any] | None = None


def _kochava_switch(value: Any) -> Any:
    """``integrations.Kochava: true`` is Segment's "send to Kochava" with no options (``false`` is filtered
    before validation, see functions.pipeline.segment)."""
    return None if isinstance(value, bool) else value


class KochavaIntegration(_Model):
    """``integrations.Kochava`` on a Segment call: what Segment's ``context`` lacks, with the native field names
    and the native models (so every rule of the native route applies: the AdServices window, consent, ATT)."""

    att: Att | None = None
    adservices: AdServices | None = None
    consent: Consent | None = None
    install_referrer: InstallReferrer | None = None
    kochava_device_id: OptionalId = None
    iad_attribution_details: dict[str, Any] | None = None


class SegmentIntegrations(_Model):
    Kochava: Annotated[KochavaIntegration | None, BeforeValidator(_kochava_switch)] = None


_IOS_OS_NAMES = frozenset({"ios", "iphone os", "ipados"})


# Cached: called twice per Segment call (the call rule, then the conversion into the internal event) with values that
# repeat ("ios", "iOS"...), each validated to at most 64 characters there; at most 1,024 pairs are kept (issue 27).
@lru_cache(maxsize=1024)
def segment_platform(device_type: str | None, os_name: str | None) -> Literal["ios", "android"] | None:
    """The platform of a Segment call: ``context.device.type`` when it is ios / android (any case), else
    ``context.os.name`` (``iOS``, ``iPhone OS``, ``iPadOS``, ``Android``), else None.

    >>> segment_platform("Android", None), segment_platform("phone", "iPhone OS"), segment_platform(None, "Linux")
    ('android', 'ios', None)
    """
    for value in (device_type, os_name):
        if value:
            key = value.strip().lower()
            if key == "android":
                return "android"
            if key in _IOS_OS_NAMES:
                return "ios"
    return None


class SegmentEvent(_Model):
    """One Segment-spec call that the pipeline maps (track / screen / identify)."""

    type: Literal["track", "screen", "identify"]
    messageId: Identifier
    event: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    name: Annotated[str, Field(max_length=256)] | None = None  # screen name
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    timestamp: Timestamp
    userId: OptionalId = None
    anonymousId: OptionalId = None
    context: SegmentContext
    integrations: SegmentIntegrations | None = None

    @model_validator(mode="after")
    def _call_rules(self) -> SegmentEvent:
        context = self.context
        device, os = context.device, context.os
        segment_call_rules(self.type, self.event, self.userId, device.type if device else None, os.name if os else None)
        return self


def segment_call_rules(
    call_type: str, event: str | None, user_id: str | None, device_type: str | None, os_name: str | None
) -> None:
    """The rules of a Segment call across its fields (``SegmentEvent``'s model validator, and the plain validator's
    after it, call this one function): raise ``ValueError`` naming the field."""
    if call_type == "track" and not event:
        raise ValueError("event: is required for track calls")
    if call_type == "identify" and not user_id:
        raise ValueError("userId: is required for identify calls")
    if segment_platform(device_type, os_name) is None:
        raise ValueError("context.device.type: must be ios or android (or context.os.name iOS or Android)")


def _segment_call_rules_plain(call: dict[str, Any]) -> dict[str, Any]:
    """:func:`segment_call_rules` on a call validated into plain data (:data:`validate_segment_call`)."""
    context = call["context"]
    device, os = context["device"], context["os"]
    segment_call_rules(
        call["type"],
        call["event"],
        call["userId"],
        device["type"] if device else None,
        os["name"] if os else None,
    )
    return call


# --- The Segment call validated into plain data --------------------------------------------------------------------
# A Segment call is read once, converted into the internal NativeEvent (functions.pipeline.events) and dropped: its
# Segment models (call, context, device, os, app, integrations, integrations.Kochava: PLAIN_SEGMENT_MODELS) are
# built only to be read. Validating into dicts instead, through the same pydantic-core schema with those ``model``
# nodes turned into ``typed-dict`` nodes (same fields, inner schemas, defaults and config, so the same values,
# errors and locations), costs about half
# (issue 27, measured). The schema is derived from SegmentEvent's own core schema when this module is imported,
# so the models stay the single source of the contract; any model-level validator other than ``_call_rules`` on
# these classes makes the derivation fail loudly here rather than be skipped
# (tests/unit/pipeline/test_parse_fast_paths.py compares both on generated calls).

# The models of the internal event below NativeEvent: plain data too once validated (``integrations.Kochava`` of a
# Segment call holds four of them), so the hot path never builds a model instance per event (issue 27).
NATIVE_PART_MODELS: tuple[type[BaseModel], ...] = (Device, Att, App, AdServices, Consent, InstallReferrer)
NATIVE_MODELS: tuple[type[BaseModel], ...] = (NativeEvent, *NATIVE_PART_MODELS)
PLAIN_SEGMENT_MODELS: tuple[type[BaseModel], ...] = (
    SegmentEvent,
    SegmentContext,
    SegmentDevice,
    SegmentOS,
    SegmentApp,
    SegmentIntegrations,
    KochavaIntegration,
    *NATIVE_PART_MODELS,
)


def plain_schema(node: Any, twins: dict[Any, Any], models: tuple[type[BaseModel], ...] = PLAIN_SEGMENT_MODELS) -> Any:
    """``node`` (a core schema, or a part of one) with every ``model`` node of ``models`` as a ``typed-dict`` node.
    A validator that runs before such a model sees the raw input either way and is kept; one that runs after it
    (or around it) would get a dict instead of the model: it must have a plain twin in ``twins`` (an after
    validator taking and returning the dict), else ``TypeError``."""
    if isinstance(node, list):
        return [plain_schema(item, twins, models) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind == "model" and node["cls"] in models:
        return _typed_dict_node(node, twins, models)
    if kind in _AFTER_OR_AROUND and _model_below(node.get("schema"), models) is not None:  # plain: no schema
        function = node["function"].get("function")
        if kind != "function-after" or function not in twins:
            model = _model_below(node["schema"], models)
            raise TypeError(f"the validator {function!r} after {model!r} has no plain twin")
        return core_schema.no_info_after_validator_function(
            twins[function], plain_schema(node["schema"], twins, models)
        )
    return {key: plain_schema(value, twins, models) for key, value in node.items()}


_AFTER_OR_AROUND = frozenset({"function-after", "function-wrap", "function-plain"})


def _model_below(node: Any, models: tuple[type[BaseModel], ...]) -> str | None:
    """The name of the model of ``models`` that ``node`` validates (through nullable / default wrappers), or None."""
    while isinstance(node, dict) and node.get("type") in ("nullable", "default"):
        node = node["schema"]
    if isinstance(node, dict) and node.get("type") == "model" and node["cls"] in models:
        return str(node["cls"].__name__)
    return None


def _typed_dict_node(node: dict[str, Any], twins: dict[Any, Any], models: tuple[type[BaseModel], ...]) -> CoreSchema:
    fields_node = node["schema"]
    unsupported = {"post_init", "custom_init", "root_model", "generic_origin"} & {k for k, v in node.items() if v}
    if fields_node.get("type") != "model-fields" or unsupported or fields_node.get("computed_fields"):
        raise TypeError(f"{node['cls'].__name__}: a model shape the plain Segment validator does not handle")
    fields = {}
    for name, field in fields_node["fields"].items():
        inner = plain_schema(field["schema"], twins, models)
        fields[name] = core_schema.typed_dict_field(
            inner, required=inner.get("type") != "default", validation_alias=field.get("validation_alias")
        )
    config: core_schema.CoreConfig = node.get("config") or core_schema.CoreConfig()
    return core_schema.typed_dict_schema(
        fields, extra_behavior=config.get("extra_fields_behavior"), config=config, total=False
    )


validate_segment_call: Callable[[Any], dict[str, Any]] = SchemaValidator(
    plain_schema(SegmentEvent.__pydantic_core_schema__, {SegmentEvent._call_rules: _segment_call_rules_plain})
).validate_python
"""``SegmentEvent.model_validate(raw)`` as plain data: the call and its context, device, os and app as dicts (every
field present, defaults filled in, as on the models), ``integrations`` and ``integrations.Kochava`` too, and the
native models in it (att, adservices, consent, install_referrer). Raises the same ``ValidationError``."""

validate_native_values: Callable[[Any], dict[str, Any]] = SchemaValidator(
    plain_schema(
        NativeEvent.__pydantic_core_schema__,
        {NativeEvent._name_required_for_track: _native_event_rules_plain},
        NATIVE_MODELS,
    )
).validate_python
"""``NativeEvent.model_validate(raw)`` as plain data (the internal event's values, :func:`values_of`): the event and
its device, ATT answer, app, AdServices, consent and install referrer as dicts, every field present. The same
pydantic-core schema with the models' nodes as typed-dict nodes, derived from the models when this module is
imported; raises the same ``ValidationError`` (tests/unit/pipeline/test_parse_fast_paths.py compares both)."""


def values_of(model: BaseModel) -> dict[str, Any]:
    """A validated model's values as plain data: its ``__dict__``, every model in it as its values too (what
    :data:`validate_native_values` gives for the same input). The way in to the plain hot path for a model built by
    hand (tests, tools).

    >>> values_of(Device(platform="ios", id="V"))["platform"], values_of(Att())
    ('ios', {'status': None, 'time': None, 'duration': None})
    """
    values = dict(model.__dict__)
    for key, value in values.items():
        if isinstance(value, BaseModel):
            values[key] = values_of(value)
    return values


# --- JSON schema export (API Gateway request models) ---------------------------------------------------------------

SCHEMA_FILES = {
    "native": "native_body.schema.json",
    "segment": "segment_body.schema.json",
    "segment_batch": "segment_batch_body.schema.json",
    "segment_call": "segment_call_body.schema.json",
}


def body_schema(route: Literal["native", "segment"]) -> dict[str, Any]:
    """Draft-4 JSON schema of a request body: one event, or ``{"batch": [event, ...]}`` (1..100 events).

    Native route: API Gateway checks the outer shape and every event in the batch; the enricher still validates
    each event on its own (it is the authority, and gives per-event reasons). Segment routes: the envelope only
    (see :func:`segment_envelope_schema`).
    """
    if route == "segment":
        return segment_envelope_schema()
    event_schema = NativeEvent.model_json_schema(mode="validation", ref_template="#/definitions/{model}")
    definitions = event_schema.pop("$defs", {})
    event_name = NativeEvent.__name__
    definitions[event_name] = event_schema
    batch = {
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH_EVENTS,
                "items": {"$ref": f"#/definitions/{event_name}"},
            }
        },
    }
    schema = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": f"{route} ingest body",
        "type": "object",
        "oneOf": [{"$ref": f"#/definitions/{event_name}"}, batch],
        "definitions": definitions,
    }
    converted: dict[str, Any] = _to_draft4(schema)
    return converted


def segment_envelope_schema() -> dict[str, Any]:
    """The Segment routes' body schema: only the envelope, a JSON object whose ``batch``, when present, is an
    array of 1 to 100 objects (one call, or ``{"batch": [...], "sentAt": ..., "context": ...}``).

    Each call is judged by the enricher on its own, so one bad call never makes a library (which drops a whole
    batch on a 4xx) lose the other 99.
    """
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": "segment ingest body: one call or a batch of calls, each validated by the enricher",
        "type": "object",
        "properties": {
            "batch": {"type": "array", "minItems": 1, "maxItems": MAX_BATCH_EVENTS, "items": {"type": "object"}}
        },
    }


def _to_draft4(node: Any) -> Any:
    """Convert the JSON Schema 2020-12 constructs pydantic emits into draft 4 (API Gateway's dialect)."""
    if isinstance(node, list):
        return [_to_draft4(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "const":
            out["enum"] = [value]
        elif key == "exclusiveMinimum" and not isinstance(value, bool):
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum" and not isinstance(value, bool):
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key in {"examples", "discriminator", "prefixItems", "$defs"}:
            continue
        elif key == "title" and isinstance(value, str) and "properties" not in node and "$ref" not in node:
            continue  # pydantic's per-field titles are noise in an API Gateway model
        elif key == "default" and value is None:
            continue
        else:
            out[key] = _to_draft4(value)
    # anyOf [X, {"type": "null"}] -> X with a nullable type (draft 4 has no "null" in anyOf shortcuts issue)
    any_of = out.get("anyOf")
    if isinstance(any_of, list) and any(item == {"type": "null"} for item in any_of):
        rest = [item for item in any_of if item != {"type": "null"}]
        if len(rest) == 1 and isinstance(rest[0], dict) and isinstance(rest[0].get("type"), str | list):
            merged = copy.deepcopy(rest[0])
            types = merged["type"] if isinstance(merged["type"], list) else [merged["type"]]
            merged["type"] = [*types, "null"]
            del out["anyOf"]
            out.update(merged)
    return out


DRAFT4 = "http://json-schema.org/draft-04/schema#"


def envelope_schema(model: Literal["segment_batch", "segment_call"]) -> dict[str, Any]:
    """Draft-4 schema of a Segment HTTP Tracking API body: the envelope only, each call is judged by the enricher.

    ``segment_batch`` (``/v1/batch``): an object with a ``batch`` array of 1..100 objects (``sentAt``, ``context``...
    may be next to it); ``segment_call`` (``/v1/track``...): an object. So one bad call never makes a library
    drop the other 99 (it drops a whole batch on a 4xx).

    >>> envelope_schema("segment_batch")["properties"]["batch"]["maxItems"]
    100
    """
    if model == "segment_call":
        return {"$schema": DRAFT4, "title": "Segment call (single-call path)", "type": "object"}
    batch = {"type": "array", "minItems": 1, "maxItems": MAX_BATCH_EVENTS, "items": {"type": "object"}}
    return {
        "$schema": DRAFT4,
        "title": "Segment batch (envelope only)",
        "type": "object",
        "required": ["batch"],
        "properties": {"batch": batch},
    }


def schema_for(model: str) -> dict[str, Any]:
    """The request model ``model`` (a key of :data:`SCHEMA_FILES`)."""
    if model in ("native", "segment"):
        return body_schema(model)  # type: ignore[arg-type]
    return envelope_schema(model)  # type: ignore[arg-type]


def write_schemas(directory: Path) -> list[Path]:
    """Write every request model into ``directory`` (``make schemas``); returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model, filename in SCHEMA_FILES.items():
        path = directory / filename
        path.write_text(json.dumps(schema_for(model), indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":  # pragma: no cover - exercised through `make schemas` and the drift test
    for written_path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "infra/schemas")):
        print(f"wrote {written_path}")

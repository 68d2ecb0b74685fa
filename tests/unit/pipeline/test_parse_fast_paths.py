"""The parser's shortcuts give exactly what the models they skip would give.

``parse_body`` checks a batch body's shape itself instead of through ``NativeBatch`` when orjson parsed it, and
``parse_event`` calls the models' validators without ``model_validate``'s wrapper.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import SchemaValidator

from functions.pipeline import contract, events, reasons
from functions.pipeline.contract import MAX_BATCH_EVENTS, Device, NativeBatch, NativeEvent, SegmentEvent
from functions.pipeline.events import FilteredCall, Rejection, parse_body, parse_event, plain_batch, segment_to_event
from functions.pipeline.segment import filtered_because

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
batches = (
    json_values | st.lists(json_values, max_size=5) | st.lists(st.dictionaries(st.text(), json_values), max_size=5)
)

EVENT = {
    "uuid": "u",
    "type": "track",
    "event": "x",
    "timestamp": 1_700_000_000,
    "device": {"platform": "ios", "id": "V"},
}


@given(batches)
def test_a_plain_batch_is_one_the_model_accepts(batch: Any) -> None:
    document = orjson.loads(orjson.dumps({"batch": batch}))
    try:
        NativeBatch.model_validate(document)
    except ValidationError:
        assert not plain_batch(document["batch"])
    else:
        assert plain_batch(document["batch"])


def test_batch_sizes_at_the_limits() -> None:
    assert not plain_batch([])
    assert plain_batch([{}] * MAX_BATCH_EVENTS)
    assert not plain_batch([{}] * (MAX_BATCH_EVENTS + 1))
    too_many = parse_body(orjson.dumps({"batch": [EVENT] * (MAX_BATCH_EVENTS + 1)}))
    assert [(item.reason, item.field) for item in too_many if isinstance(item, Rejection)] == [
        (reasons.INVALID_BODY, "batch")
    ]


def test_a_key_with_a_lone_surrogate_rejects_its_event_not_the_batch() -> None:
    # NativeBatch would refuse the whole body (its keys must be valid strings): each event is judged on its own.
    body = b'{"batch": [{"\\ud800": 1}, ' + orjson.dumps(EVENT) + b"]}"
    bad, good = parse_body(body)
    assert isinstance(bad, Rejection) and not isinstance(good, Rejection)
    assert (bad.reason, bad.field, bad.raw) == (reasons.INVALID_EVENT, "\\ud800", {"\ufffd": 1})


def test_a_leniently_parsed_batch_that_is_not_a_batch_still_goes_through_the_model() -> None:
    body = b'{"batch": [], "x": "\\ud800"}'
    [item] = parse_body(body)
    assert isinstance(item, Rejection)
    assert (item.reason, item.field, item.raw) == (reasons.INVALID_BODY, "batch", {"batch": [], "x": "\ufffd"})


@given(
    st.dictionaries(
        st.sampled_from([*sorted(EVENT), "messageId", "context", "integrations"]),
        json_values | st.sampled_from(["page", "alias", {"Kochava": False}, {"All": False}]),
        max_size=7,
    )
)
def test_parse_event_is_model_validate(raw: dict[str, Any]) -> None:
    try:
        native = NativeEvent.model_validate(raw)
    except ValidationError:
        assert isinstance(parse_event(raw, "native"), Rejection)
    else:
        assert parse_event(raw, "native") == native
    if filtered_because(raw) is not None:  # page / group / alias, or not for Kochava: never validated
        assert isinstance(parse_event(raw, "segment"), FilteredCall)
        return
    try:
        call = SegmentEvent.model_validate(raw)
    except ValidationError:
        assert isinstance(parse_event(raw, "segment"), Rejection)
    else:
        assert parse_event(raw, "segment") == segment_to_event(call)


def test_valid_events_of_both_routes_are_model_validate() -> None:
    segment = {"type": "track", "event": "x", "messageId": "m", "timestamp": 1_700_000_000}
    segment["context"] = {"device": {"type": "Android", "id": 7, "attTrackingStatus": 2}, "app": {"build": 3}}
    assert parse_event(EVENT, "native") == NativeEvent.model_validate(EVENT)
    assert parse_event(segment, "segment") == segment_to_event(SegmentEvent.model_validate(segment))


SEGMENT_CALL = {
    "type": "track",
    "event": "Level Up",
    "messageId": "m-1",
    "timestamp": 1_700_000_000,
    "context": {"device": {"type": "ios", "id": "V", "advertisingId": "A"}, "app": {"namespace": "com.x"}},
}


def test_a_field_added_to_a_model_reaches_both_routes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given the internal event and its device gain an optional field each (one with a default factory),
    when a native event and a Segment call are parsed,
    then both come out as the new models, the new fields read as their defaults and model_dump() holds them:
    ``events.event_model`` takes the nested models and the field list from ``model_fields`` (``_trusted``), not
    from a hand-written copy (the device model comes from the wider event's own annotation)."""

    class WiderDevice(Device):
        carrier: str | None = None

    class WiderEvent(NativeEvent):
        device: WiderDevice
        tags: list[str] = Field(default_factory=list)
        campaign: str | None = "organic"

    monkeypatch.setattr(events, "NativeEvent", WiderEvent)
    monkeypatch.setattr(events, "_validate_native", WiderEvent.__pydantic_validator__.validate_python)

    native = parse_event(EVENT, "native")
    segment = parse_event(SEGMENT_CALL, "segment")
    for parsed in (native, segment):
        assert isinstance(parsed, WiderEvent) and isinstance(parsed.device, WiderDevice)
        assert (parsed.tags, parsed.campaign, parsed.device.carrier) == ([], "organic", None)
        dumped = parsed.model_dump()
        assert (dumped["tags"], dumped["campaign"], dumped["device"]["carrier"]) == ([], "organic", None)
    assert isinstance(segment, WiderEvent)
    # The fast path builds what validation would build from the same values.
    assert segment == WiderEvent.model_validate(segment.model_dump())
    other = parse_event({**SEGMENT_CALL, "messageId": "m-2"}, "segment")
    assert isinstance(other, WiderEvent)
    assert other.tags is not segment.tags  # a default factory gives each event its own value


def test_segment_events_are_what_validation_would_build() -> None:
    segment = parse_event(SEGMENT_CALL, "segment")
    assert isinstance(segment, NativeEvent)
    assert segment == NativeEvent.model_validate(segment.model_dump())
    assert set(vars(segment)) == set(NativeEvent.model_fields)
    assert set(vars(segment.device)) == set(Device.model_fields)


# --- The Segment call validated into plain data (contract.validate_segment_call) ----------------------------------
# Values that each field's rules accept and refuse: wrong types, bounds, blanks, case and whitespace variants.
_texts = st.sampled_from(["", " ", "x", " iOS ", "Android", "phone", "iPhone OS", "a" * 65, "a" * 257, "\t17.1 "])
_ids = st.sampled_from(["", "  ", "m-1", " m-2 ", 7, -3, True, 1.5, "a" * 129, None])
_any = _texts | _ids | st.integers(-2, 5) | st.sampled_from(["page", "Track", "soon", 1e13, False, [], {}])
_timestamps = st.sampled_from(
    [1_700_000_000, 1_700_000_000_123, "2026-11-20T12:00:00Z", "2024-01-02 03:04:05", " 1700000000", 1.7e9]
)


_ABSENT = object()  # a required key left out


def _mostly(valid: st.SearchStrategy[Any], wrong: st.SearchStrategy[Any] = _any) -> st.SearchStrategy[Any]:
    """A valid value five times in six, a wrong one else: calls both accepted and refused."""
    return st.tuples(st.integers(0, 5), valid, wrong).map(lambda drawn: drawn[2] if drawn[0] == 2 else drawn[1])


def _maybe(fields: dict[str, st.SearchStrategy[Any]], **required: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """An object with the ``required`` keys (now and then one left out) and some of the others."""
    present = st.fixed_dictionaries(
        {key: _mostly(value, _any | st.just(_ABSENT)) for key, value in required.items()},
        optional={key: _mostly(value) for key, value in fields.items()},
    )
    return present.map(lambda drawn: {key: value for key, value in drawn.items() if value is not _ABSENT})


_valid_texts = st.sampled_from(["x", " iOS ", "Android", "iPhone OS", "\t17.1 ", "Level Up"])
_valid_ids = st.sampled_from(["m-1", " m-2 ", 7, "6d92078a-8246", "00000000-0000"])
_devices = _maybe(
    {
        "id": _ids,
        "advertisingId": _ids,
        "advertising_id": _ids,
        "adTrackingEnabled": st.booleans(),
        "model": _texts,
        "manufacturer": _texts,
        "attTrackingStatus": st.integers(-1, 4),
    },
    type=st.sampled_from(["ios", "Android", " IOS ", "phone"]),
)
_contexts = _maybe(
    {
        "os": _maybe({"name": _texts, "version": _texts}),
        "app": _maybe({"name": _texts, "version": _texts, "build": _ids, "namespace": _texts}),
        "ip": _texts,
        "userAgent": _texts,
        "locale": _texts,
        "traits": st.dictionaries(st.sampled_from(["a", "b"]), _any, max_size=2),
    },
    device=_devices,
)
_kochava = _maybe(
    {
        "att": _maybe({"status": st.sampled_from(["authorized", "denied", "nope"]), "time": _timestamps}),
        "consent": _maybe({"gdpr_applies": st.booleans(), "tc_string": _texts}),
        "kochava_device_id": _ids,
    }
)
segment_calls = _maybe(
    {
        "name": _texts,
        "properties": st.dictionaries(st.sampled_from(["name", "ad_services_token", "n"]), _any, max_size=2),
        "traits": st.dictionaries(st.sampled_from(["a", "c"]), _any, max_size=2),
        "userId": _valid_ids,
        "anonymousId": _ids,
        "integrations": st.fixed_dictionaries({"Kochava": _kochava | st.booleans() | st.none()}),
    },
    type=st.sampled_from(["track", "screen", "identify"]),
    messageId=_valid_ids,
    event=_valid_texts | st.just("Application Installed"),
    timestamp=_timestamps,
    context=_contexts,
)


def _through_the_models(raw: dict[str, Any]) -> Any:
    """What parse_event gave when it validated a Segment call with SegmentEvent: the event, or (field, message)."""
    try:
        call = SegmentEvent.model_validate(raw)
    except ValidationError as exc:
        field, message = events.describe_error(exc)
        if field == "type":
            message = "type: must be track, screen, identify, page, group or alias"
        return field, message
    return segment_to_event(call)


@settings(max_examples=400)
@given(segment_calls)
def test_the_plain_segment_validator_is_the_models(raw: dict[str, Any]) -> None:
    """Given any Segment call, valid for the models or not,
    when parse_event validates it into plain data (not the Segment models) and converts it,
    then it accepts exactly what the models accept, with the same internal event, and refuses exactly what they
    refuse, naming the same field with the same message."""
    if filtered_because(raw) is not None:
        return
    parsed = parse_event(raw, "segment")
    expected = _through_the_models(raw)
    if isinstance(parsed, Rejection):
        assert (parsed.field, parsed.message) == expected
    else:
        assert isinstance(expected, NativeEvent), expected
        assert parsed == expected
        assert parsed.model_fields_set == expected.model_fields_set
        assert parsed.device.model_fields_set == expected.device.model_fields_set


def test_generated_segment_calls_are_both_valid_and_invalid() -> None:
    """The strategy above reaches both sides (else the property would prove little). 100 examples: a call is
    valid about half the time, so both sides show up within the first few (300 cost 3 s of the unit tier)."""
    outcomes = set()

    @settings(max_examples=100)
    @given(segment_calls)
    def sample(raw: dict[str, Any]) -> None:
        if filtered_because(raw) is None:
            outcomes.add(isinstance(parse_event(raw, "segment"), NativeEvent))

    sample()
    assert outcomes == {True, False}


def test_a_model_validator_without_a_plain_twin_is_refused() -> None:
    """A model-level rule added to a Segment model must not be skipped silently by the plain validator."""

    from functions.pipeline import contract

    class Stricter(contract.SegmentOS):
        @model_validator(mode="after")
        def _rule(self) -> Stricter:
            return self

    class Holder(BaseModel):
        os: Stricter

    with pytest.raises(TypeError, match="no plain twin"):
        contract.plain_schema(Holder.__pydantic_core_schema__, {}, (*contract.PLAIN_SEGMENT_MODELS, Stricter))

    # Nor a field rule after an optional model with a default (the validator then wraps nullable and default nodes)
    class OptionalHolder(BaseModel):
        os: Annotated[contract.SegmentOS | None, AfterValidator(lambda value: value)] = None

    with pytest.raises(TypeError, match="no plain twin"):
        contract.plain_schema(OptionalHolder.__pydantic_core_schema__, {})


# --- The platform and ``properties: null`` read in pydantic-core (contract._PlatformText, contract._NullIsEmpty) -----


class _RulesBefore(BaseModel):
    """The Python rules they replace: a BeforeValidator lower-casing and stripping the platform before the Literal,
    and a ``mode="before"`` field validator reading ``properties: null`` as ``{}``."""

    model_config = ConfigDict(str_strip_whitespace=True)
    platform: Annotated[Literal["ios", "android"], BeforeValidator(contract.lower_stripped)] = "ios"
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("properties", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class _RulesCore(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True)
    platform: contract.Platform = "ios"
    properties: contract.Properties = Field(default_factory=dict)


_spaces = st.sampled_from(["", " ", "\t", "\n", "\x1c", "\x1f", "\x85", "\xa0", "\u2028", "\u3000", "\u200b"])
_platforms = st.builds(
    lambda left, word, right: left + word + right,
    _spaces,
    st.sampled_from(["ios", "iOS", "IOS", "Android", "ANDROID", "android", "phone", "", "İOS", "i\u0307os"]),
    _spaces,
)


@given(
    st.dictionaries(
        st.sampled_from(["platform", "properties"]),
        _platforms | json_values | st.sampled_from([None, {}, {"a": 1}, [], 1, True]),
    )
)
def test_the_platform_and_null_properties_are_read_as_the_python_rules_read_them(raw: dict[str, Any]) -> None:
    """Given any platform and properties, the core rules give the values or the errors (type, location, message,
    context) the Python validators gave."""

    def validated(model: type[BaseModel]) -> Any:
        try:
            return model.model_validate(raw).model_dump()
        except ValidationError as exc:
            return [(e["type"], e["loc"], e["msg"], e.get("ctx")) for e in exc.errors(include_url=False)]

    assert validated(_RulesCore) == validated(_RulesBefore)


def test_the_plain_derivation_keeps_a_plain_function_validator() -> None:
    """A field read by a plain function (no inner schema: ``properties: null`` read as ``{}``) is neither a model
    nor a validator after one: the derivation keeps it (it failed on the missing inner schema)."""

    class Holder(BaseModel):
        properties: contract.Properties = Field(default_factory=dict)

    plain = contract.plain_schema(Holder.__pydantic_core_schema__, {}, (Holder,))
    validate = SchemaValidator(plain).validate_python
    assert validate({"properties": None}) == {"properties": {}}
    assert validate({"properties": {"a": 1}}) == {"properties": {"a": 1}}


# --- The internal event as plain data (contract.validate_native_values, events.parse_event_values) -----------------
_native_devices = _maybe(
    {
        "id": _ids,
        "advertising_id": _ids,
        "kochava_device_id": _ids,
        "ip": _texts,
        "user_agent": _texts,
        "model": _texts,
        "os_version": _texts,
        "limit_ad_tracking": st.booleans(),
        "att": _maybe(
            {
                "status": st.sampled_from(["authorized", "denied", "nope"]),
                "time": _timestamps,
                "duration": st.sampled_from([0, 2.5, -1]),
            }
        ),
    },
    platform=st.sampled_from(["ios", " Android ", "IOS", "phone"]),
)
native_events = _maybe(
    {
        "event": _valid_texts,
        "action": _valid_texts,
        "properties": st.none() | st.dictionaries(st.sampled_from(["a", "b"]), _any, max_size=2),
        "action_properties": st.dictionaries(st.sampled_from(["a", "c"]), _any, max_size=2),
        "user_id": _valid_ids,
        "session_id": _ids,
        "ref": _texts,
        "offset": st.sampled_from([1, 1.5, None]),
        "app": _maybe({"bundle_id": _texts, "version": _texts, "build": _ids}),
        "adservices": _maybe({"token": _texts, "generated_at": _timestamps, "attribution": st.just({"a": 1})}),
        "iad_attribution_details": st.none() | st.just({"x": 1}),
        "consent": _maybe({"gdpr_applies": st.booleans(), "tc_string": _texts, "ad_user_data": st.booleans()}),
        "install_referrer": _maybe({"click_time": _timestamps}, referrer=_texts),
    },
    uuid=_valid_ids,
    type=st.sampled_from(["install", "track", "screen", "identify"]),
    timestamp=_timestamps,
    device=_native_devices,
)


def _model_or_error(validate: Any, raw: dict[str, Any]) -> Any:
    try:
        return validate(raw)
    except ValidationError as exc:
        return events.describe_error(exc)


@settings(max_examples=150)
@given(native_events)
def test_the_plain_native_validator_is_the_model(raw: dict[str, Any]) -> None:
    """Given any native event, valid for the model or not,
    when it is validated into plain data (NativeEvent's core schema with its models as typed dicts),
    then it gives the model's values (every field, the parts as dicts), or refuses it naming the same field with the
    same message."""
    model = _model_or_error(NativeEvent.model_validate, raw)
    plain = _model_or_error(contract.validate_native_values, raw)
    if isinstance(model, NativeEvent):
        assert plain == contract.values_of(model)
    else:
        assert plain == model


@settings(max_examples=150)
@given(st.tuples(st.just("native"), native_events) | st.tuples(st.just("segment"), segment_calls))
def test_the_hot_paths_values_are_the_models(drawn: tuple[events.Route, dict[str, Any]]) -> None:
    """Given any event of either route, parse_event_values (the hot path's) gives exactly the values of what
    parse_event gives (the models), and event_model turns them back into it; a rejection or a filtered call is the
    same item."""
    route, raw = drawn
    values, model = events.parse_event_values(raw, route), parse_event(raw, route)
    if isinstance(model, NativeEvent):
        assert isinstance(values, dict)
        assert values == contract.values_of(model)
        assert events.event_model(NativeEvent, values) == model
    else:
        assert values == model


def test_generated_native_events_are_both_valid_and_invalid() -> None:
    outcomes = set()

    @settings(max_examples=60)
    @given(native_events)
    def sample(raw: dict[str, Any]) -> None:
        outcomes.add(isinstance(parse_event(raw, "native"), NativeEvent))

    sample()
    assert outcomes == {True, False}


def test_a_native_model_validator_without_a_plain_twin_is_refused() -> None:
    """A model-level rule added to a part of the internal event must not be skipped by the plain validator."""

    class StricterApp(contract.App):
        @model_validator(mode="after")
        def _rule(self) -> StricterApp:
            return self

    class Holder(BaseModel):
        app: StricterApp | None = None

    with pytest.raises(TypeError, match="no plain twin"):
        contract.plain_schema(Holder.__pydantic_core_schema__, {}, (*contract.NATIVE_MODELS, StricterApp))

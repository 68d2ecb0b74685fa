"""The ingest contract: aliases, timestamp forms, Segment conversion, clear errors, and the exported schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from functions.names import BODY_MODELS
from functions.pipeline import contract, reasons
from functions.pipeline.contract import (
    SCHEMA_FILES,
    body_schema,
    envelope_schema,
    parse_timestamp,
    schema_for,
    write_schemas,
)
from functions.pipeline.events import Rejection, parse_body, parse_event

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "infra" / "schemas"
BASE: dict[str, Any] = {
    "uuid": "u-1",
    "type": "track",
    "event": "x",
    "timestamp": 1_795_175_910,
    "device": {"platform": "ios", "id": "v"},
}


def rejection(raw: Any, route: str = "native") -> Rejection:
    item = parse_event(raw, route)  # type: ignore[arg-type]
    assert isinstance(item, Rejection), item
    return item


def test_native_aliases_action_and_action_properties() -> None:
    item = parse_event(
        {**{k: v for k, v in BASE.items() if k != "event"}, "action": "a", "action_properties": {"k": 1}}
    )
    assert not isinstance(item, Rejection)
    assert (item.name, item.properties) == ("a", {"k": 1})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020-07-10 15:00:00", 1594393200.0),
        ("2020-07-10T15:00:00Z", 1594393200.0),
        ("2020-07-10T15:00:00.250Z", 1594393200.25),
        ("2020-07-10T17:00:00+02:00", 1594393200.0),
        (1594393200, 1594393200.0),
        (1594393200.5, 1594393200.5),
        (1594393200000, 1594393200.0),
        ("1594393200123", 1594393200.123),
    ],
)
def test_timestamp_forms(value: object, expected: float) -> None:
    assert parse_timestamp(value) == pytest.approx(expected)


@pytest.mark.parametrize(("value", "problem"), [("yesterday", "must be ISO-8601"), (True, "boolean"), (5, "range")])
def test_bad_timestamps_say_what_is_accepted(value: object, problem: str) -> None:
    item = rejection({**BASE, "timestamp": value})
    assert item.field == "timestamp"
    assert problem in item.message


@pytest.mark.parametrize(
    ("patch", "field", "message"),
    [
        ({"device": {"platform": "windows"}}, "device.platform", "device.platform: must be ios or android"),
        ({"device": None}, "device", "device: must be an object"),
        ({"uuid": ""}, "uuid", "uuid: must not be empty"),
        ({"type": "click"}, "type", "type: must be install, track, screen or identify"),
        ({"event": None}, "event", "event: is required for track events (alias: action)"),
        ({"properties": [1]}, "properties", "properties: must be an object"),
        ({"device": {"platform": "ios", "limit_ad_tracking": "maybe"}}, "device.limit_ad_tracking", "true or false"),
    ],
)
def test_a_bad_event_names_the_field_and_the_problem(patch: dict[str, Any], field: str, message: str) -> None:
    item = rejection({**BASE, **patch})
    assert item.reason == reasons.INVALID_EVENT
    assert item.field == field
    assert message in item.message
    assert item.uuid == ({**BASE, **patch}.get("uuid") or None)


def test_platform_is_case_insensitive() -> None:
    item = parse_event({**BASE, "device": {"platform": " iOS ", "id": "v"}})
    assert not isinstance(item, Rejection) and item.device.platform == "ios"


def test_batch_items_are_judged_one_by_one_in_order() -> None:
    body = json.dumps({"batch": [BASE, {**BASE, "uuid": "u-2", "type": "nope"}, {**BASE, "uuid": "u-3"}]})
    items = parse_body(body)
    assert [isinstance(item, Rejection) for item in items] == [False, True, False]
    assert [getattr(item, "uuid", None) for item in items] == ["u-1", "u-2", "u-3"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", reasons.INVALID_JSON),
        (b'{"batch": []}', reasons.INVALID_BODY),
        (b"[1, 2]", reasons.INVALID_EVENT),
    ],
)
def test_bodies_that_are_not_events_are_one_rejection(body: bytes, reason: str) -> None:
    items = parse_body(body)
    assert len(items) == 1 and isinstance(items[0], Rejection)
    assert items[0].reason == reason


def test_batch_over_100_events_is_rejected_whole() -> None:
    items = parse_body(json.dumps({"batch": [BASE] * 101}))
    assert len(items) == 1 and isinstance(items[0], Rejection)
    assert items[0].message == "batch: is too long (at most 100)" or "100" in items[0].message


SEGMENT: dict[str, Any] = {
    "type": "track",
    "event": "Application Installed",
    "messageId": "m-1",
    "timestamp": "2026-11-20T11:58:31Z",
    "userId": "user-1",
    "context": {
        "device": {"type": "Android", "id": "aid", "advertisingId": "AD-1", "adTrackingEnabled": False},
        "os": {"name": "Android", "version": "14"},
        "app": {"version": "3.3.0", "namespace": "com.x"},
        "ip": "198.51.100.1",
        "userAgent": "Dalvik/2.1.0",
    },
}


def test_segment_application_installed_is_an_install_with_context_fields() -> None:
    item = parse_event(SEGMENT, "segment")
    assert not isinstance(item, Rejection)
    assert (item.uuid, item.type, item.user_id) == ("m-1", "install", "user-1")
    device = item.device
    assert (device.platform, device.id, device.advertising_id, device.limit_ad_tracking) == (
        "android",
        "aid",
        "AD-1",
        True,
    )
    assert (device.ip, device.user_agent, device.os_version) == ("198.51.100.1", "Dalvik/2.1.0", "14")
    assert item.app is not None and (item.app.bundle_id, item.app.version) == ("com.x", "3.3.0")


def test_segment_att_tracking_status_3_is_authorized() -> None:
    call = {**SEGMENT, "context": {"device": {"type": "ios", "id": "v", "attTrackingStatus": 3}}}
    item = parse_event(call, "segment")
    assert not isinstance(item, Rejection) and item.device.att is not None
    assert item.device.att.status == "authorized"


def test_segment_errors_use_segment_field_names() -> None:
    item = rejection({**SEGMENT, "context": {"device": {"type": "web"}}}, "segment")
    assert item.field == "context.device.type"
    assert item.uuid == "m-1"


@pytest.mark.parametrize("model", sorted(SCHEMA_FILES))
def test_exported_schema_files_match_the_models(model: str) -> None:
    """`make schemas` output is committed; API Gateway and the local API validate with it."""
    on_disk = json.loads((SCHEMA_DIR / SCHEMA_FILES[model]).read_text())
    assert on_disk == schema_for(model)
    jsonschema.Draft4Validator.check_schema(on_disk)


def test_every_request_model_of_the_api_has_a_schema_file() -> None:
    assert set(BODY_MODELS) == set(SCHEMA_FILES)


def test_segment_envelope_checks_only_the_envelope() -> None:
    """/v1/batch: one bad call must not make the gateway refuse the 99 good ones (the enricher judges each)."""
    batch = jsonschema.Draft4Validator(envelope_schema("segment_batch"))
    assert batch.is_valid({"batch": [{"type": "page"}, {"no": "type"}], "sentAt": "x", "context": {}, "writeKey": "k"})
    assert not batch.is_valid({"batch": []})
    assert not batch.is_valid({"batch": [{}] * 101})
    assert not batch.is_valid({"batch": ["not an object"]})
    assert not batch.is_valid({"sentAt": "x"})
    assert not batch.is_valid([{"type": "track"}])
    call = jsonschema.Draft4Validator(envelope_schema("segment_call"))
    assert call.is_valid({"event": "x"})
    assert not call.is_valid([{"event": "x"}])


def test_schema_accepts_what_the_model_accepts_and_refuses_garbage() -> None:
    validator = jsonschema.Draft4Validator(body_schema("native"))
    assert validator.is_valid(BASE)
    assert validator.is_valid({"batch": [BASE, {**BASE, "uuid": 7, "timestamp": "2026-01-01 00:00:00"}]})
    assert not validator.is_valid({**BASE, "device": {"platform": "windows"}})
    assert not validator.is_valid({"batch": []})
    assert not validator.is_valid({**BASE, "uuid": None})


def test_make_schemas_rewrites_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    """Given the committed request models, when `make schemas` runs (into a new directory), then it writes one file
        per model, each identical to the committed one: regenerating leaves `git diff` empty. The directory may be new
    (its parents too) or already there (`infra/schemas`, the default)."""
    for directory in (tmp_path / "new" / "schemas", tmp_path / "new" / "schemas", tmp_path):  # new, again, existing
        written = write_schemas(directory)
        assert sorted(path.name for path in written) == sorted(SCHEMA_FILES.values())
        for path in written:
            assert path.parent == directory
            assert path.read_bytes() == (SCHEMA_DIR / path.name).read_bytes(), path.name


class _Kind(BaseModel):
    kind: Literal["a"]


class _OtherKind(BaseModel):
    kind: Literal["b"]


# Constraints today's event model does not use yet, each written by pydantic in JSON Schema 2020-12.
class _FutureEvent(BaseModel):
    one: Literal["x"]
    n: int = Field(gt=0, lt=10, examples=[5])
    pair: tuple[int, str] | None = None
    opt: int | None = None
    pet: Annotated[_Kind | _OtherKind, Field(discriminator="kind")] | None = None
    named: str = "t"
    home: _Kind = Field(default_factory=lambda: _Kind(kind="a"), title="Home")


def test_constraints_a_model_may_add_reach_api_gateway_in_draft_4(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given an event model with a constant, exclusive bounds, examples, a tuple, nullable fields and a
    discriminated union (what a later field may bring), when its request model is exported, then API Gateway gets
    each constraint in draft 4 (its dialect): ``enum`` for ``const``, boolean exclusive bounds, nullable types,
    and none of the 2020-12 keywords it does not know."""
    monkeypatch.setattr(contract, "NativeEvent", _FutureEvent)

    schema = body_schema("native")

    ref = {"$ref": "#/definitions/_FutureEvent"}
    assert schema["oneOf"][0] == ref
    assert schema["definitions"]["_FutureEvent"] == {
        "properties": {
            "n": {"exclusiveMaximum": True, "exclusiveMinimum": True, "maximum": 10, "minimum": 0, "type": "integer"},
            "named": {"default": "t", "type": "string"},
            "home": {"$ref": "#/definitions/_Kind", "title": "Home"},  # a title given on purpose is kept
            "one": {"enum": ["x"], "type": "string"},
            "opt": {"type": ["integer", "null"]},
            "pair": {"maxItems": 2, "minItems": 2, "type": ["array", "null"]},
            "pet": {
                "anyOf": [
                    {"oneOf": [{"$ref": "#/definitions/_Kind"}, {"$ref": "#/definitions/_OtherKind"}]},
                    {"type": "null"},
                ]
            },
        },
        "required": ["one", "n"],
        "title": "_FutureEvent",
        "type": "object",
    }
    assert schema["definitions"]["_Kind"]["properties"] == {"kind": {"enum": ["a"], "type": "string"}}
    validator = jsonschema.Draft4Validator(schema)
    assert validator.is_valid({"one": "x", "n": 5, "opt": None, "pair": [1, "a"], "pet": {"kind": "b"}})
    for wrong in ({"one": "y", "n": 5}, {"one": "x", "n": 0}, {"one": "x", "n": 10}, {"one": "x", "n": 5, "opt": "1"}):
        assert not validator.is_valid(wrong), wrong


@pytest.mark.parametrize(("sent", "kept"), [(" u-7 ", "u-7"), (42, "42"), ("x" * 128, "x" * 128)])
def test_an_id_is_text_stripped_and_a_number_becomes_its_decimal_text(sent: object, kept: str) -> None:
    """Given an event whose uuid is padded text, an integer, or exactly as long as allowed, when it is parsed,
    then it is accepted with the id as Kochava will get it."""
    item = parse_event({**BASE, "uuid": sent})
    assert not isinstance(item, Rejection), item
    assert item.uuid == kept


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        (True, "uuid: must be a string"),
        (1.5, "uuid: must be a string"),
        ("", "uuid: must not be empty"),
        ("   ", "uuid: must not be empty"),
        ("x" * 129, "uuid: is too long (at most 128)"),
    ],
)
def test_an_id_that_is_a_flag_a_fraction_empty_or_too_long_is_refused_naming_the_field(
    sent: object, message: str
) -> None:
    """A boolean or a fraction is not an id (no "True" or "1.5" reaches Kochava); blank or over-long ids neither."""
    item = rejection({**BASE, "uuid": sent})
    assert (item.reason, item.field, item.message) == (reasons.INVALID_EVENT, "uuid", message)
    device = rejection({**BASE, "device": {"platform": "ios", "id": False}})
    assert (device.field, device.message) == ("device.id", "device.id: must be a string")


def test_the_first_and_last_moments_of_the_accepted_range_are_accepted() -> None:
    """2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z themselves are in range; a millisecond outside is not."""
    assert parse_timestamp(946_684_800) == 946_684_800.0
    assert parse_timestamp("2000-01-01T00:00:00Z") == 946_684_800.0
    assert parse_timestamp("2100-01-01T00:00:00Z") == 4_102_444_800.0
    for outside in (946_684_799.999, "1999-12-31T23:59:59.999Z", "2100-01-01T00:00:00.001Z"):
        with pytest.raises(ValueError, match="out of range"):
            parse_timestamp(outside)


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        ([1_795_175_910], "timestamp: must be a timestamp string or number"),
        ({"s": 1}, "timestamp: must be a timestamp string or number"),
        (float("nan"), "timestamp: must be a finite number"),
        ("NaN", "timestamp: must be a finite number"),
        (True, "timestamp: must be a timestamp (ISO-8601, 'YYYY-MM-DD HH:MM:SS', epoch seconds or ms), got a boolean"),
    ],
)
def test_a_timestamp_of_the_wrong_type_is_refused_saying_what_it_must_be(sent: object, message: str) -> None:
    item = rejection({**BASE, "timestamp": sent})
    assert (item.reason, item.field, item.message) == (reasons.INVALID_EVENT, "timestamp", message)

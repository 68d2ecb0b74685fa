"""The delivery-queue envelope as the deliverer and ``tools.dlq`` meet it: what a round trip keeps, what ``build``
refuses, and the message each malformed body is dead-lettered with (on-call reads it in ``tools.dlq show``).

Also ``jsontext.compact_json``'s fallback for values orjson refuses (nesting deeper than 254): the text keeps
non-ASCII characters as they are, as orjson's own output does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.pipeline.envelope import KINDS, EnvelopeError, Kind, build, parse
from functions.pipeline.jsontext import compact_json


@dataclass(frozen=True)
class Outcome:
    uuid: str | None
    status: str
    kind: Kind | None
    event_name: str | None
    payload: dict[str, Any] | None
    adservices_generated_at: float | None


OK = Outcome("e-1", "ok", "event", "Purchase", {"action": "event"}, 1764500000.5)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@given(
    uuid=st.text(min_size=1, max_size=20),
    kind=st.sampled_from(sorted(KINDS)),
    event_name=st.none() | st.text(max_size=20),
    payload=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    generated_at=st.none() | st.floats(0, 4e9),
)
def test_what_the_enricher_builds_the_deliverer_reads_back_unchanged(
    uuid: str, kind: Kind, event_name: str | None, payload: dict[str, Any], generated_at: float | None
) -> None:
    env = parse(build(Outcome(uuid, "ok", kind, event_name, payload, generated_at)))
    assert (env.uuid, env.kind, env.event_name, env.payload, env.adservices_generated_at) == (
        uuid,
        kind,
        event_name,
        payload,
        generated_at,
    )


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome("e-1", "rejected", "event", "Purchase", {"action": "event"}, None),
        Outcome("e-1", "ok", "event", "Purchase", None, None),
        Outcome("e-1", "ok", None, "Purchase", {"action": "event"}, None),
        Outcome(None, "ok", "event", "Purchase", {"action": "event"}, None),
    ],
    ids=["not ok", "no payload", "no kind", "no uuid"],
)
def test_only_a_complete_ok_outcome_becomes_a_delivery(outcome: Outcome) -> None:
    with pytest.raises(EnvelopeError, match=rf"can be delivered, got status {outcome.status!r}"):
        build(outcome)


def _body(**changes: Any) -> bytes:
    raw = orjson.loads(build(OK)) | changes
    return orjson.dumps({k: v for k, v in raw.items() if v is not _DROP})


_DROP = object()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{nope", r"^not JSON: "),
        (b"[1, 2]", r"^not a JSON object$"),
        (_body(v=2), r"^unsupported envelope version 2$"),
        (_body(v=_DROP), r"^unsupported envelope version None$"),
        (_body(uuid=""), r"^uuid: missing$"),
        (_body(uuid=7), r"^uuid: missing$"),
        (_body(kind="purchase"), r"^kind: must be one of \['event', 'identityLink', 'install'\]$"),
        (_body(payload=[]), r"^payload: must be an object$"),
        (_body(adservices_generated_at="1764500000"), r"^adservices_generated_at: must be a number or null$"),
        (_body(adservices_generated_at=True), r"^adservices_generated_at: must be a number or null$"),
    ],
    ids=["json", "object", "version", "no version", "empty uuid", "uuid type", "kind", "payload", "text", "bool"],
)
def test_a_malformed_envelope_is_refused_naming_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        parse(body)


def test_an_event_name_that_is_not_text_is_read_as_none() -> None:
    assert parse(_body(event_name=5)).event_name is None
    assert parse(_body(event_name="Purchase")).event_name == "Purchase"


def test_a_value_too_deep_for_orjson_keeps_its_non_ascii_text() -> None:
    deep: Any = "café ✓"
    for _ in range(300):
        deep = [deep]
    text = compact_json({"name": deep})
    assert text == '{"name":' + "[" * 300 + '"café ✓"' + "]" * 300 + "}"

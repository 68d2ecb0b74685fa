"""The privacy tool's pure rules (tools/privacy/core.py): which DLQ bodies and profiles belong to an erased device."""

from __future__ import annotations

import json

import pytest

from tools.privacy.core import Wanted, judge_body, profile_keys, profile_matches, split_key

IDFV = "3B2F8C1E-5A8D-4C0E-9F4B-1D2E3F4A5B6C"
IDFA = "6D92078A-8246-4BA4-AE5B-76104861E7DC"
WANTED = Wanted.of([IDFV, IDFA])


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"uuid": "n", "device": {"platform": "ios", "id": IDFV.lower()}}, "device.id"),
        ({"uuid": "n", "device": {"platform": "ios", "advertising_id": IDFA}}, "device.advertising_id"),
        ({"messageId": "s", "context": {"device": {"id": IDFV}}}, "context.device.id"),
        ({"messageId": "s", "context": {"device": {"advertisingId": IDFA.lower()}}}, "context.device.advertisingId"),
        ({"v": 1, "payload": {"kochava_device_id": IDFV}}, "payload.kochava_device_id"),
        ({"v": 1, "payload": {"data": {"device_ids": {"idfa": IDFA}}}}, "payload.data.device_ids.idfa"),
        ({"payload": {"device_id": {"idfv": IDFV}, "data": {"user_id": "u"}}}, "payload.device_id.idfv"),
    ],
)
def test_every_message_shape_matches_on_its_identifier_keys(body: dict[str, object], path: str) -> None:
    verdict = judge_body(json.dumps(body), WANTED)
    assert verdict.action == "delete" and verdict.matched == (path,)


def test_an_id_under_another_key_or_of_another_device_does_not_match() -> None:
    for body in (
        {"uuid": IDFV, "device": {"id": "OTHER"}},  # the event uuid is not a device id
        {"properties": {"id": IDFV}},  # `id` counts only inside `device`
        {"device": {"id": IDFV + "0"}},
    ):
        assert judge_body(json.dumps(body), WANTED).action == "keep", body


def test_a_batch_with_other_devices_is_rewritten_without_the_erased_events() -> None:
    mine, theirs = {"device": {"id": IDFV}}, {"device": {"id": "OTHER"}}
    verdict = judge_body(json.dumps({"batch": [mine, theirs, mine], "sentAt": "x"}), WANTED)
    assert verdict.action == "rewrite" and (verdict.removed_events, verdict.kept_events) == (2, 1)
    assert verdict.new_body is not None and json.loads(verdict.new_body) == {"batch": [theirs], "sentAt": "x"}
    assert judge_body(json.dumps([mine, mine]), WANTED).action == "delete"
    assert judge_body(json.dumps({"batch": [theirs]}), WANTED).action == "keep"


def test_text_that_is_not_json_matches_whole_ids_in_any_case() -> None:
    assert judge_body('{"device": {"id": "' + IDFV.lower() + '", ', WANTED).matched == ("(body text)",)
    assert judge_body("prefix" + IDFV + "suffix", WANTED).action == "keep"


def test_user_ids_match_only_when_erasing_by_user() -> None:
    body = json.dumps({"userId": "User-7", "context": {"device": {"id": "OTHER"}}})
    assert judge_body(body, WANTED).action == "keep"
    assert judge_body(body, Wanted.of([], ["user-7"])).matched == ("userId",)


def test_all_zero_or_empty_ids_are_never_wanted() -> None:
    zero = "00000000-0000-0000-0000-000000000000"
    assert not Wanted.of([zero, " "])
    assert judge_body(json.dumps({"device": {"advertising_id": zero}}), Wanted.of([zero])).action == "keep"


def test_profile_keys_cover_the_case_variants_under_every_app() -> None:
    assert profile_keys(["a", "b"], "ios", "Ab") == [
        "a#ios#ab",  # the enricher's key: the id normalised
        "b#ios#ab",
        "a#ios#Ab",  # profiles stored before ids were normalised: the spellings that can be guessed
        "a#ios#AB",
        "b#ios#Ab",
        "b#ios#AB",
    ]
    assert split_key("not-a-key") is None


def test_profile_matches_by_key_device_stored_ids_or_user_id() -> None:
    platforms = frozenset({"ios"})
    assert profile_matches(f"g#ios#{IDFV.lower()}", {}, WANTED, platforms)
    assert not profile_matches(f"g#android#{IDFV}", {}, WANTED, platforms)  # same id, other platform
    assert profile_matches("g#ios#OTHER", {"advertising_id": IDFA.lower()}, WANTED, platforms)
    assert profile_matches("g#ios#OTHER", {"user_id": "U-1"}, Wanted.of([], ["u-1"]), frozenset())
    assert not profile_matches("g#ios#OTHER", {"user_id": "u-2"}, Wanted.of([], ["u-1"]), frozenset())

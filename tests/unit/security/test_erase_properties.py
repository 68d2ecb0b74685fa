"""Invariant (docs/security.md, I3): an erase removes every profile of a device, in any spelling of its id, and
never confirms what it did not check.

Profiles are keyed by the id normalised (``functions.pipeline.profiles.profile_key``); a profile stored before
that (issue 22) holds the id as the app sent it. ``tools.privacy``'s erase (``erase_profiles``, on an in-memory
table with the real table's interface) must find it under any case variant, read every key back after deleting,
and report where it did not look.
"""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from functions.pipeline.kochava import is_zero_id
from functions.pipeline.profiles import Profile, legacy_profile_key, profile_key
from functions.pipeline.settings import Settings
from tools.privacy.aws import AppIds
from tools.privacy.ops import Request, erase_profiles

IOS_APP, ANDROID_APP, SHOP_APP = "ko-ios", "ko-android", "ko-shop"
APP_IDS = AppIds(
    "test",
    Settings(
        kochava_app_id_ios=IOS_APP,
        kochava_app_id_android=ANDROID_APP,
        kochava_app_ids_by_bundle={"com.example.shop": SHOP_APP},
    ),
)


class MemoryTable:
    """The :class:`tools.privacy.aws.ProfileTable` interface over a dict; ``write_back`` re-creates a key after its
    delete (an enricher that read the profile just before the erase writes it back just after)."""

    name = "profiles"

    def __init__(self, items: dict[str, Profile], write_back: frozenset[str] = frozenset()) -> None:
        self.items = dict(items)
        self.write_back = write_back

    def get(self, key: str) -> Profile | None:
        return self.items.get(key)

    def delete(self, key: str) -> Profile | None:
        old = self.items.pop(key, None)
        if old is not None and key in self.write_back:
            self.items[key] = dict(old)
        return old

    def scan(self) -> Iterator[tuple[str, Profile]]:
        yield from list(self.items.items())


# Ids as the contract takes them (1-128 characters, stripped), letters of any case among digits and punctuation;
# never an all-zero id (it identifies nobody: the enricher keys no profile by it and an erase never matches it).
ids = st.text(
    alphabet=st.characters(codec="ascii", categories=("Lu", "Ll", "Nd", "Pd", "Pc", "Po")), min_size=1, max_size=40
).filter(lambda v: not is_zero_id(v))


def spelled(device_id: str, flips: list[bool]) -> str:
    """A case variant of ``device_id``: each letter upper or lower case as ``flips`` says."""
    padded = flips + [False] * len(device_id)
    return "".join(c.upper() if flip else c.lower() for c, flip in zip(device_id, padded, strict=False))


@settings(max_examples=150, deadline=None)
@given(
    device_id=ids,
    stored_flips=st.lists(st.booleans(), max_size=40),
    asked_flips=st.lists(st.booleans(), max_size=40),
    platform=st.sampled_from(["ios", "android"]),
    app=st.sampled_from([IOS_APP, ANDROID_APP, SHOP_APP, "ko-retired"]),
    normalised=st.booleans(),
)
def test_an_erase_finds_a_profile_stored_under_any_spelling_of_the_id(
    device_id: str,
    stored_flips: list[bool],
    asked_flips: list[bool],
    platform: str,
    app: str,
    normalised: bool,
) -> None:
    stored = spelled(device_id, stored_flips)
    key = profile_key(app, platform, stored) if normalised else legacy_profile_key(app, platform, stored)
    other = profile_key(IOS_APP, "ios", device_id + "-other")
    table = MemoryTable({key: {"ip": "192.0.2.1"}, other: {"ip": "192.0.2.2"}})

    report, _ = erase_profiles(table, APP_IDS, Request(devices=((platform, spelled(device_id, asked_flips)),)))

    assert key not in table.items
    assert other in table.items  # nobody else's profile
    assert [found.key for found in report.deleted] == [key]
    assert report.complete and report.checked >= 1


def test_a_profile_written_back_after_its_delete_leaves_the_erase_unconfirmed() -> None:
    key = profile_key(IOS_APP, "ios", "Dev-1")
    table = MemoryTable({key: {"ip": "192.0.2.1"}}, write_back=frozenset({key}))

    report, _ = erase_profiles(table, APP_IDS, Request(devices=(("ios", "dev-1"),)))

    assert [found.key for found in report.deleted] == [key]
    assert report.remaining == [key] and not report.complete


def test_without_the_scan_the_erase_says_where_it_did_not_look() -> None:
    """ "removed 0" must not stand for "not looked": a profile under an unguessable spelling is not found without
    the scan, and the report says the table was not scanned (the CLI then exits 1)."""
    key = legacy_profile_key(IOS_APP, "ios", "Priv-Dev-1")
    table = MemoryTable({key: {"ip": "192.0.2.1"}})
    no_guids = AppIds("test", Settings(kochava_app_id_ios=IOS_APP))

    report, _ = erase_profiles(
        table, no_guids, Request(devices=(("ios", "priv-dev-1"), ("android", "x")), scan_table=False)
    )

    assert report.deleted == [] and key in table.items
    assert not report.complete
    assert any("--no-scan" in place for place in report.not_looked)
    assert "the android profiles: no Kochava app GUID known for android" in report.not_looked

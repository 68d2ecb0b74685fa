"""The refusal of a key bound to many apps (``functions/pipeline/sources.py``): its text lists the first five, sorted,
then says there are more. It failed on a mutant the other tests let live (issue 26, "tests that catch mutants")."""

from __future__ import annotations

from functions.pipeline.sources import check_source


def test_a_key_bound_to_many_apps_is_refused_listing_five_and_saying_there_are_more() -> None:
    # Given a key bound to seven apps, and a Segment call for an app it is not bound to
    apps = {"key-big": [f"ko-app-{n}" for n in range(7, 0, -1)]}
    refused = check_source(apps, "key-big", bundle_id="com.example.other", app_id="ko-other", route="segment")
    # Then the refusal names the Segment field, the first five apps in order and that there are more
    assert refused is not None
    assert refused.message == (
        "context.app.namespace: API key key-big may send only to ko-app-1, ko-app-2, ko-app-3, ko-app-4, "
        "ko-app-5, ... (SOURCE_APPS, by the Kochava app GUID an event goes to); this event has bundle "
        "'com.example.other', so Kochava app 'ko-other'"
    )

"""Segment calls before the mapping: which ones are filtered on purpose, and the batch envelope (pure).

The Segment routes take what Segment's and RudderStack's server libraries send: one call, or
``{"batch": [call, ...], "sentAt": ..., "context": {...}, "integrations": {...}}``. Each call is judged on its own:

* Call types the pipeline does not map (``page``, ``group``, ``alias``) are **filtered**: accepted, counted by
  type, never validated further, never sent, never dead-lettered.
* Segment's own destination switch is honoured: a call with ``integrations.Kochava: false``, or with
  ``integrations.All: false`` and no ``Kochava`` entry, would not reach Kochava through Segment either, so it is
  filtered too. ``integrations.Kochava`` as an object carries the native fields Segment lacks
  (``functions.pipeline.contract.KochavaIntegration``).
* The batch-level ``context`` and ``integrations`` apply to every call of the batch (as on Segment's HTTP API):
  they are merged into each call, the call's own values winning, one level deep (``context.device`` of the batch
  and of the call are merged key by key). The merged call is what is validated and what a DLQ message carries,
  so a dead-lettered call replays alone with everything it was sent with. ``sentAt`` is ignored.

Example:
    >>> filtered_because({"type": "page", "name": "Home"})
    'page calls are not mapped to Kochava'
    >>> filtered_because({"type": "track", "integrations": {"All": False}}) is not None
    True
    >>> merge_shared({"context": {"device": {"type": "ios"}, "locale": "en-US"}},
    ...              {"type": "track", "context": {"device": {"id": "V"}}})["context"]
    {'device': {'type': 'ios', 'id': 'V'}, 'locale': 'en-US'}
"""

from __future__ import annotations

from typing import Any, Final

UNMAPPED_TYPES: Final = frozenset({"page", "group", "alias"})
CALL_TYPES_TEXT: Final = "track, screen, identify, page, group or alias"  # every call type a route accepts
# Batch-level keys that apply to every call of the batch.
SHARED_KEYS: Final = ("context", "integrations")
KOCHAVA: Final = "Kochava"


def filtered_because(call: dict[str, Any]) -> str | None:
    """Why a raw Segment call is deliberately not sent to Kochava, or None when it is to be mapped."""
    call_type = call.get("type")
    if type(call_type) is str and call_type in UNMAPPED_TYPES:
        return f"{call_type} calls are not mapped to Kochava"
    integrations = call.get("integrations")
    if type(integrations) is dict:
        switch = integrations.get(KOCHAVA)
        if switch is False:
            return "integrations.Kochava is false: the call is not for Kochava"
        if switch is None and integrations.get("All") is False:
            return "integrations.All is false and integrations.Kochava is not set: the call is not for Kochava"
    return None


def shared_fields(document: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The batch-level keys that apply to every call, and an error naming the field when one is not an object."""
    shared: dict[str, Any] = {}
    for key in SHARED_KEYS:
        value = document.get(key)
        if value is None:
            continue
        if type(value) is not dict:
            return {}, key
        if value:
            shared[key] = value
    return shared, None


def merge_shared(shared: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    """``call`` with the batch-level ``shared`` keys merged in (see the module docstring); ``call`` is not changed."""
    merged = dict(call)
    for key, batch_value in shared.items():
        own = merged.get(key)
        if own is None:
            merged[key] = batch_value
        elif type(own) is dict:
            merged[key] = _merge_one_level(batch_value, own)
    return merged


def _merge_one_level(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in own.items():
        under = out.get(key)
        out[key] = {**under, **value} if type(under) is dict and type(value) is dict else value
    return out

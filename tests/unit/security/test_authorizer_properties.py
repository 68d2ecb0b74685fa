"""Invariant (docs/security.md, I6): for any header bytes the API key authorizer answers Allow or Deny, never raises.

An exception in the authorizer is no answer at all: API Gateway returns 500 (and ``tools.local`` dropped the
connection). Non-ASCII Basic credentials used to raise (``b64decode`` of a non-ASCII str raises ``ValueError``).
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from functions import names
from functions.authorizer.config import AuthorizerConfig
from functions.authorizer.core import authorize, basic_auth_user

CONFIG = AuthorizerConfig.for_paths(names.INGEST_PATHS)
ARN = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod/POST/v1/batch"
PATHS = [*sorted(p.path for p in names.INGEST_PATHS), "/v1/nope", ""]

# Header values as API Gateway could hand them over: any bytes, decoded the two ways a proxy may (Latin-1 keeps every
# byte, UTF-8 with replacement), any text, and Basic credentials around any of those.
header_text = st.one_of(
    st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
    st.binary(max_size=64).map(lambda b: b.decode("utf-8", "replace")),
    st.text(max_size=64),
)
header_value = st.one_of(
    header_text,
    header_text.map(lambda t: "Basic " + t),
    st.binary(max_size=48).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.none(),
    st.integers(),
)


@settings(max_examples=300, deadline=None)
@given(
    path=st.sampled_from(PATHS),
    headers=st.dictionaries(
        st.sampled_from(["Authorization", "authorization", "x-api-key", "X-Api-Key", "other"]), header_value
    ),
)
def test_any_header_gets_allow_or_deny_and_never_an_exception(path: str, headers: dict[str, Any]) -> None:
    decision = authorize({"methodArn": ARN, "resource": path, "headers": headers}, CONFIG)
    (statement,) = decision.answer["policyDocument"]["Statement"]
    assert statement["Effect"] in ("Allow", "Deny")
    if statement["Effect"] == "Allow":
        key = decision.answer["usageIdentifierKey"]
        assert isinstance(key, str) and key and decision.denied is None
    else:
        assert "usageIdentifierKey" not in decision.answer and decision.denied


def test_non_ascii_basic_credentials_are_denied_not_raised() -> None:
    """Issue 22: ``Authorization: Basic é...`` raised ValueError (no HTTP answer locally, a 500 deployed)."""
    assert basic_auth_user("Basic wk-é") is None
    decision = authorize({"methodArn": ARN, "resource": "/v1/batch", "headers": {"Authorization": "Basic ñ=="}}, CONFIG)
    assert decision.denied == "the Authorization header is not HTTP Basic auth"

"""The API key authorizer (functions/authorizer): which header carries the key on which path, and its answers."""

from __future__ import annotations

import base64
import importlib
from typing import Any

import pytest

from functions import names
from functions.authorizer import config as authorizer_config
from functions.authorizer import core
from functions.authorizer.config import AuthorizerConfig
from functions.authorizer.core import authorize, basic_auth_user, request_key

CONFIG = AuthorizerConfig.for_paths(names.INGEST_PATHS)
ARN = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod/POST/v1/batch"


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_names_the_function_cannot_import_stay_equal_to_functions_names() -> None:
    """The authorizer keeps its own copies (importing functions.names would double its import cost)."""
    assert core.API_KEY_HEADER == names.API_KEY_HEADER
    assert core.BASIC_AUTH_HEADER == names.BASIC_AUTH_HEADER
    assert authorizer_config.ENV_LOG_LEVEL == names.ENV_POWERTOOLS_LOG_LEVEL


def test_the_path_table_round_trips_through_the_environment() -> None:
    again = AuthorizerConfig.from_env(CONFIG.environment())
    assert again.api_key_paths == {"/v1/events", "/v1/segment"}
    assert again.basic_auth_paths == {p.path for p in names.INGEST_PATHS if p.segment_api}
    assert "/v1/batch" in again.basic_auth_paths and "/v1/alias" in again.basic_auth_paths


@pytest.mark.parametrize(
    ("header", "user"),
    [
        (basic("wk-1"), "wk-1"),
        (basic("wk-1", "ignored"), "wk-1"),
        ("basic " + base64.b64encode(b"wk-1").decode(), "wk-1"),  # no colon: all of it is the user name
        ("  Basic   " + base64.b64encode(b"wk:1:2").decode() + " ", "wk"),
        (basic(""), None),
        ("Bearer abc", None),
        ("Basic", None),
        ("Basic not*base64", None),
        ("Basic " + base64.b64encode(b"\xff\xfe:").decode(), None),  # not UTF-8
        ("", None),
        (None, None),
    ],
)
def test_basic_auth_user(header: str | None, user: str | None) -> None:
    assert basic_auth_user(header) == user


def test_each_path_takes_the_key_from_its_one_header_only() -> None:
    """The answer is cached by that header's value: a key from any other header could stand for the wrong key."""
    both = {"X-Api-Key": "header-key", "Authorization": basic("basic-key")}
    assert request_key(both, "/v1/events", CONFIG) == ("header-key", "")
    assert request_key(both, "/v1/batch", CONFIG) == ("basic-key", "")
    assert request_key({"x-api-key": "header-key"}, "/v1/batch", CONFIG) == (None, "no Authorization header")
    assert request_key({"authorization": basic("k")}, "/v1/segment", CONFIG) == (None, "no x-api-key header")
    assert request_key(both, "/v1/nope", CONFIG)[0] is None


def _event(headers: dict[str, Any], resource: str = "/v1/batch") -> dict[str, Any]:
    return {"type": "REQUEST", "methodArn": ARN, "resource": resource, "headers": headers}


def test_allow_hands_the_key_to_api_gateway_for_every_method_of_the_stage() -> None:
    decision = authorize(_event({"authorization": basic("wk-9")}), CONFIG)
    assert decision.denied is None
    answer = decision.answer
    assert answer["usageIdentifierKey"] == "wk-9"
    assert answer["principalId"] == "api-key", "never the key itself"
    (statement,) = answer["policyDocument"]["Statement"]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod/*",
    }


def test_a_request_without_a_usable_key_gets_an_explicit_deny_and_no_key() -> None:
    decision = authorize(_event({"authorization": "Bearer wk-9"}), CONFIG)
    assert decision.denied == "the Authorization header is not HTTP Basic auth"
    assert "usageIdentifierKey" not in decision.answer
    assert decision.answer["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert "wk-9" not in repr(decision.answer)


def test_the_handler_answers_and_never_logs_the_key(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    for name, value in CONFIG.environment().items():
        monkeypatch.setenv(name, value)
    from functions.authorizer import handler

    handler = importlib.reload(handler)  # a cold start reads the environment
    assert handler.lambda_handler(_event({"x-api-key": "k-1"}, "/v1/events"), None)["usageIdentifierKey"] == "k-1"
    secret = "super-secret-write-key"
    answer = handler.lambda_handler(_event({"authorization": "Token " + secret}), None)
    assert answer["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert "not HTTP Basic auth" in caplog.text
    assert secret not in caplog.text

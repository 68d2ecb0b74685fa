"""docs/openapi.json: a valid OpenAPI 3.1 document, generated (no drift), of every ingest route with the answers the
stack really gives, whose request schemas accept the samples the pipeline accepts and refuse a bad one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from functions.names import INGEST_PATHS
from infra.constructs.ingest_api import (
    GATEWAY_RESPONSES,
    STATUS_BODY_TOO_LARGE,
    STATUS_QUEUE_FAILED,
    STATUS_QUEUE_REJECTED_BODY,
    STATUS_QUEUE_UNAVAILABLE,
)
from infra.openapi import ERRORS, OUTPUT, build_document, render
from tests.infra.support import REPO_ROOT

DOCUMENT = build_document()


def test_the_document_is_valid_openapi() -> None:
    validate(json.loads(OUTPUT.read_text()))


def test_the_checked_in_document_is_what_make_schemas_generates() -> None:
    assert OUTPUT.read_text() == render(), "docs/openapi.json is stale: run make schemas"


def test_every_ingest_path_is_documented_with_its_auth_and_success_answer() -> None:
    assert set(DOCUMENT["paths"]) == {spec.path for spec in INGEST_PATHS}
    for spec in INGEST_PATHS:
        operation = DOCUMENT["paths"][spec.path]["post"]
        key = "writeKey" if spec.segment_api else "apiKey"
        assert operation["security"] == [{key: []}, {"sigv4": []}]
        assert ("200" if spec.segment_api else "202") in operation["responses"]
        assert "application/json" in operation["requestBody"]["content"]


def test_every_error_the_gateway_answers_is_documented() -> None:
    documented = {(status, code) for status, (codes, _) in ERRORS.items() for code in codes}
    answered = {(status, error) for _, status, error, _ in GATEWAY_RESPONSES if status}
    answered |= {
        (STATUS_BODY_TOO_LARGE, "request_too_large"),
        (STATUS_QUEUE_REJECTED_BODY, "invalid_body"),
        (STATUS_QUEUE_FAILED, "server_error"),
        (STATUS_QUEUE_UNAVAILABLE, "service_unavailable"),
    }
    assert answered <= documented, answered - documented
    for spec in INGEST_PATHS:
        assert set(ERRORS) <= set(DOCUMENT["paths"][spec.path]["post"]["responses"])


def _request_validator(path: str) -> Draft202012Validator:
    schema = DOCUMENT["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return Draft202012Validator({**schema, "components": DOCUMENT["components"]})


def _sample(name: str) -> Any:
    return json.loads((REPO_ROOT / "events" / name).read_text())


@pytest.mark.parametrize(
    ("path", "sample"),
    [
        ("/v1/events", "ios_install.json"),
        ("/v1/events", "android_install.json"),
        ("/v1/events", "identify.json"),
        ("/v1/events", "purchase_nested.json"),
        ("/v1/segment", "segment_track.json"),
        ("/v1/batch", "segment_library_batch.json"),
    ],
)
def test_the_request_schemas_accept_the_samples(path: str, sample: str) -> None:
    errors = [error.message for error in _request_validator(path).iter_errors(_sample(sample))]
    assert errors == []


def test_the_native_request_schema_refuses_an_unknown_platform() -> None:
    assert not _request_validator("/v1/events").is_valid(_sample("invalid_platform.json"))

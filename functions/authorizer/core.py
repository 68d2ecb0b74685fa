"""The API key authorizer's rules, pure: which API key a request carries, and the answer API Gateway caches.

The REST API reads its API keys from a Lambda authorizer (``apiKeySource: AUTHORIZER``) so that one set of API
keys and usage plans serves both ways callers send a key: the ``x-api-key`` header on the native paths
(``/v1/events``, ``/v1/segment``) and HTTP Basic auth with the key as the user name (``Authorization: Basic
base64(key + ":")``, the password empty or ignored) on the Segment HTTP Tracking API paths (``/v1/batch``...) that
the Segment and RudderStack server libraries call (``functions.names.INGEST_PATHS``; the function gets the table
in its environment, :class:`~functions.authorizer.config.AuthorizerConfig`).

The authorizer does not know or check the keys: it hands the key to API Gateway as ``usageIdentifierKey`` and API
Gateway checks it against the usage plan's keys (unknown or disabled: ``403``) and applies that key's throttle and
quota, as with header keys. Its answer is cached by API Gateway per header value (``resultsCacheTtl``), so it runs
once per key per TTL, not per request, and the cached policy must therefore allow every method of the stage.

A request whose header holds no usable key (not Basic, not base64, an empty user name) gets an explicit Deny
(``403``), cached too. The key, a secret, is never logged or used as the principal id.

Example:
    >>> config = AuthorizerConfig(api_key_paths=["/v1/events"], basic_auth_paths=["/v1/batch"])
    >>> arn = "arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod/POST/v1/batch"
    >>> event = {"methodArn": arn, "resource": "/v1/batch", "headers": {"Authorization": "Basic d2stMTIzOg=="}}
    >>> decision = authorize(event, config)
    >>> decision.answer["usageIdentifierKey"], decision.answer["policyDocument"]["Statement"][0]["Resource"]
    ('wk-123', 'arn:aws:execute-api:eu-west-1:123456789012:a1b2c3/prod/*')
    >>> authorize({**event, "headers": {"Authorization": "Bearer x"}}, config).denied
    'the Authorization header is not HTTP Basic auth'
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from functions.authorizer.config import AuthorizerConfig

PRINCIPAL_ID = "api-key"  # the same for every caller: the key itself is a secret
API_KEY_HEADER = "x-api-key"  # functions.names.API_KEY_HEADER (a test keeps them equal)
BASIC_AUTH_HEADER = "authorization"  # functions.names.BASIC_AUTH_HEADER
_BASIC = "basic"


class Decision:
    """The authorizer's answer to API Gateway, and why it denied (None: allowed)."""

    __slots__ = ("answer", "denied")

    def __init__(self, answer: dict[str, Any], denied: str | None = None) -> None:
        self.answer = answer
        self.denied = denied


def basic_auth_user(header: str | None) -> str | None:
    """The user name of an ``Authorization: Basic ...`` header (the write key), or None when there is none.

    >>> basic_auth_user("Basic " + base64.b64encode(b"key-1:").decode())
    'key-1'
    >>> basic_auth_user("basic " + base64.b64encode(b"key-1").decode())  # no colon: the whole value
    'key-1'
    >>> basic_auth_user("Basic !!!") is None, basic_auth_user("Basic " + base64.b64encode(b":pw").decode()) is None
    (True, True)
    >>> basic_auth_user("Basic wk-\u00e9") is None  # non-ASCII: no key, a Deny (it used to raise)
    True
    """
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != _BASIC:
        return None
    try:
        # ValueError covers all three ways this fails: not base64 (binascii.Error), not UTF-8 (UnicodeDecodeError),
        # and a str with non-ASCII characters (b64decode raises a plain ValueError).
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except ValueError:
        return None
    user = decoded.partition(":")[0]
    return user or None


def request_key(headers: Mapping[str, Any] | None, path: str, config: AuthorizerConfig) -> tuple[str | None, str]:
    """``(key, problem)``: the API key in the one header ``path`` takes it from (``problem`` says why it is None).

    The key comes only from the header API Gateway caches the answer by (the authorizer's identity source), so a
    cached answer can never stand for another key.
    """
    basic = path in config.basic_auth_paths
    if not basic and path not in config.api_key_paths:
        return None, f"no ingest path {path!r}"
    items = headers.items() if isinstance(headers, Mapping) else ()
    lowered = {str(name).lower(): value for name, value in items}
    if not basic:
        value = lowered.get(API_KEY_HEADER)
        key = value.strip() if isinstance(value, str) else ""
        return (key, "") if key else (None, f"no {API_KEY_HEADER} header")
    header = lowered.get(BASIC_AUTH_HEADER)
    if not isinstance(header, str) or not header.strip():
        return None, "no Authorization header"
    user = basic_auth_user(header)
    return (user, "") if user else (None, "the Authorization header is not HTTP Basic auth")


def stage_arn(method_arn: str) -> str:
    """Every method of the method's stage: ``arn:...:<api id>/<stage>/*`` (the answer is cached across methods).

    >>> stage_arn("arn:aws:execute-api:us-east-1:123456789012:abc/dev/POST/v1/track")
    'arn:aws:execute-api:us-east-1:123456789012:abc/dev/*'
    """
    prefix, _, resource = method_arn.rpartition(":")
    api_id, stage = [*resource.split("/"), "", ""][:2]
    return f"{prefix}:{api_id}/{stage}/*"


def _policy(effect: str, resource: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
    }


def authorize(event: Mapping[str, Any], config: AuthorizerConfig) -> Decision:
    """The answer to a REQUEST authorizer event: Allow with ``usageIdentifierKey``, or an explicit Deny."""
    method_arn = str(event.get("methodArn") or "")
    key, problem = request_key(event.get("headers"), str(event.get("resource") or ""), config)
    if key is None:
        deny = _policy("Deny", stage_arn(method_arn) if method_arn else "*")
        return Decision({"principalId": PRINCIPAL_ID, "policyDocument": deny}, problem)
    return Decision(
        {
            "principalId": PRINCIPAL_ID,
            "policyDocument": _policy("Allow", stage_arn(method_arn)),
            "usageIdentifierKey": key,
        }
    )

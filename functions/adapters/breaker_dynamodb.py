"""The Kochava circuit breaker and per-message attempt counts on DynamoDB (``names.DELIVERY_STATE_TABLE``).

Implements :class:`functions.ports.BreakerStore`. Two kinds of items share the table (partition key
``pk``, TTL attribute ``expires_at``):

* ``breaker#kochava``: ``state`` (``open`` | ``closed``), ``failures`` (transient failures in a row),
  ``opened_at``, ``closed_at``, ``probe_after`` (epoch s). Read once per batch with an eventually consistent
  ``GetItem`` (0.5 read units); every change is a conditional ``UpdateItem``, so exactly one invocation opens the
  breaker, claims a probe slot or closes it. It expires ``ITEM_TTL_S`` after its last change: an open breaker
  nobody touches for that long is forgotten (the next failures open it again).
* ``attempts#<SQS message id>``: ``attempts``, the real POST attempts of one message (``ADD``, one write per
  transient failure while the breaker is closed: none in normal operation). Expires after ``ITEM_TTL_S``, longer
  than the delivery queue keeps a message.

The deliverer calls only ``GetItem`` and ``UpdateItem`` here (``infra/constructs/functions.py`` grants exactly
those on this table).

Example:
    >>> _state({"state": {"S": "open"}, "failures": {"N": "7"}, "probe_after": {"N": "120.5"}})
    BreakerState(is_open=True, failures=7, opened_at=None, closed_at=None, probe_after=120.5)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from functions.names import DELIVERY_QUEUE, DELIVERY_STATE_TABLE
from functions.pipeline.breaker import CLOSED, BreakerState

PK: Final = DELIVERY_STATE_TABLE.partition_key
TTL_ATTRIBUTE: Final = DELIVERY_STATE_TABLE.ttl_attribute or "expires_at"
BREAKER_KEY: Final = "breaker#kochava"
ATTEMPTS_PREFIX: Final = "attempts#"
# Items live a day longer than the delivery queue keeps a message.
ITEM_TTL_S: Final = DELIVERY_QUEUE.retention_s + 24 * 3600
_CONDITION_FAILED: Final = "ConditionalCheckFailedException"
# `state` is a DynamoDB reserved word.
_NAMES: Final = {"#state": "state", "#ttl": TTL_ATTRIBUTE}


class DynamoDbClient(Protocol):
    def get_item(self, **kwargs: Any) -> dict[str, Any]: ...

    def update_item(self, **kwargs: Any) -> dict[str, Any]: ...


def _number(item: Mapping[str, Any], name: str) -> float | None:
    value = item.get(name)
    return float(value["N"]) if isinstance(value, Mapping) and "N" in value else None


def _state(item: Mapping[str, Any]) -> BreakerState:
    state = item.get("state")
    return BreakerState(
        is_open=isinstance(state, Mapping) and state.get("S") == "open",
        failures=int(_number(item, "failures") or 0),
        opened_at=_number(item, "opened_at"),
        closed_at=_number(item, "closed_at"),
        probe_after=_number(item, "probe_after") or 0.0,
    )


def _n(value: float) -> dict[str, str]:
    return {"N": repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))}


class DynamoDbBreakerStore:
    """See the module docstring. ``client`` is a boto3 DynamoDB client, or a factory creating it on first use."""

    def __init__(self, client: DynamoDbClient | Callable[[], DynamoDbClient], table_name: str) -> None:
        self._client_or_factory = client
        self._resolved: DynamoDbClient | None = None
        self.table_name = table_name

    @property
    def _client(self) -> DynamoDbClient:
        if self._resolved is None:
            candidate = self._client_or_factory
            self._resolved = candidate() if callable(candidate) else candidate  # a boto3 client is not callable
        return self._resolved

    def read(self) -> BreakerState:
        answer = self._client.get_item(TableName=self.table_name, Key={PK: {"S": BREAKER_KEY}})
        item = answer.get("Item")
        return _state(item) if item else CLOSED

    def add_failures(self, count: int, *, now: float) -> int:
        answer = self._client.update_item(
            TableName=self.table_name,
            Key={PK: {"S": BREAKER_KEY}},
            UpdateExpression="ADD failures :count SET #ttl = :ttl",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":count": _n(count), ":ttl": _n(int(now) + ITEM_TTL_S)},
            ReturnValues="UPDATED_NEW",
        )
        return int(_number(answer.get("Attributes", {}), "failures") or 0)

    def reset_failures(self) -> None:
        self._conditional(
            "SET failures = :zero",
            "attribute_exists(failures) AND failures > :zero AND (attribute_not_exists(#state) OR #state <> :open)",
            {":zero": _n(0), ":open": {"S": "open"}},
            names={"#state": "state"},
        )

    def open(self, *, now: float, probe_after: float) -> bool:
        return self._conditional(
            "SET #state = :open, opened_at = :now, probe_after = :probe_after, failures = :zero, #ttl = :ttl",
            "attribute_not_exists(#state) OR #state <> :open",
            {
                ":open": {"S": "open"},
                ":now": _n(now),
                ":probe_after": _n(probe_after),
                ":zero": _n(0),
                ":ttl": _n(int(now) + ITEM_TTL_S),
            },
        )

    def claim_probe(self, *, now: float, next_probe_after: float) -> bool:
        return self._conditional(
            "SET probe_after = :next",
            "#state = :open AND probe_after <= :now",
            {":open": {"S": "open"}, ":now": _n(now), ":next": _n(next_probe_after)},
            names={"#state": "state"},
        )

    def close(self, *, now: float) -> bool:
        return self._conditional(
            "SET #state = :closed, closed_at = :now, failures = :zero, #ttl = :ttl",
            "#state = :open",
            {
                ":open": {"S": "open"},
                ":closed": {"S": "closed"},
                ":now": _n(now),
                ":zero": _n(0),
                ":ttl": _n(int(now) + ITEM_TTL_S),
            },
        )

    def count_attempt(self, message_id: str, *, now: float) -> int:
        answer = self._client.update_item(
            TableName=self.table_name,
            Key={PK: {"S": ATTEMPTS_PREFIX + message_id}},
            UpdateExpression="ADD attempts :one SET #ttl = :ttl",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={":one": _n(1), ":ttl": _n(int(now) + ITEM_TTL_S)},
            ReturnValues="UPDATED_NEW",
        )
        return int(_number(answer.get("Attributes", {}), "attempts") or 1)

    def _conditional(
        self,
        update: str,
        condition: str,
        values: dict[str, Any],
        *,
        names: dict[str, str] | None = None,
    ) -> bool:
        """One conditional update of the breaker item: True when applied, False when the condition failed."""
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={PK: {"S": BREAKER_KEY}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=names if names is not None else dict(_NAMES),
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if _error_code(exc) == _CONDITION_FAILED:
                return False
            raise
        return True


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        if isinstance(error, Mapping):
            return str(error.get("Code", ""))
    return ""

"""The Kochava circuit breaker and per-message attempt counts on DynamoDB (``names.DELIVERY_STATE_TABLE``).

Implements :class:`functions.ports.BreakerStore`. Two kinds of items share the table (partition key
``pk``, TTL attribute ``expires_at``):

* ``breaker#kochava``: ``state`` (``open`` | ``closed``), ``opened_at``, ``closed_at``, ``probe_after``,
  ``last_delivery_at`` (epoch s), ``failures`` (a list of ``{e, s, t}``: the hashes of a failed event and its
  device, and when; at most 50, no ids), ``probed`` (hashes of the events and devices probed lately),
  ``openings`` and ``version``. Read once per batch with an eventually consistent ``GetItem`` (0.5 read units);
  every change is an ``UpdateItem`` conditional on the version read, so exactly one invocation opens the breaker,
  claims a probe slot or closes it. A batch of deliveries with no failure on record writes nothing. The item
  expires ``ITEM_TTL_S`` after its last change: an open breaker nobody touches for that long is forgotten.
* ``attempts#<SQS message id>``: ``attempts``, the real POST attempts of one message (``ADD``, one write per
  transient failure while the breaker is closed: none in normal operation). Expires after ``ITEM_TTL_S``, longer
  than the delivery queue keeps a message.

The deliverer calls only ``GetItem`` and ``UpdateItem`` here (``infra/constructs/functions.py`` grants exactly
those on this table).

Example:
    >>> state = _state({"state": {"S": "open"}, "version": {"N": "7"}, "probe_after": {"N": "120.5"},
    ...                 "failures": {"L": [{"M": {"e": {"S": "ab"}, "s": {"S": "cd"}, "t": {"N": "99"}}}]}})
    >>> state.is_open, state.version, state.probe_after, state.failures
    (True, 7, 120.5, (Failure(event='ab', source='cd', at=99.0),))
    >>> _state(_item(state)[1]) == state
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final, Protocol

from functions.names import DELIVERY_QUEUE, DELIVERY_STATE_TABLE
from functions.pipeline.breaker import CLOSED, BreakerState, Failure

PK: Final = DELIVERY_STATE_TABLE.partition_key
TTL_ATTRIBUTE: Final = DELIVERY_STATE_TABLE.ttl_attribute or "expires_at"
BREAKER_KEY: Final = "breaker#kochava"
ATTEMPTS_PREFIX: Final = "attempts#"
# Items live a day longer than the delivery queue keeps a message.
ITEM_TTL_S: Final = DELIVERY_QUEUE.retention_s + 24 * 3600
_CONDITION_FAILED: Final = "ConditionalCheckFailedException"


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
        opened_at=_number(item, "opened_at"),
        closed_at=_number(item, "closed_at"),
        probe_after=_number(item, "probe_after") or 0.0,
        failures=tuple(_failures(item.get("failures"))),
        last_delivery_at=_number(item, "last_delivery_at"),
        probed=tuple(_strings(item.get("probed"))),
        openings=int(_number(item, "openings") or 0),
        version=int(_number(item, "version") or 0),
    )


def _failures(value: Any) -> list[Failure]:
    """The stored failures; anything else (e.g. the count of an older version of this item) reads as none."""
    entries = value.get("L") if isinstance(value, Mapping) else None
    failures = []
    for entry in entries if isinstance(entries, list) else []:
        fields = entry.get("M") if isinstance(entry, Mapping) else None
        if isinstance(fields, Mapping):
            event, source = _strings({"L": [fields.get("e"), fields.get("s")]})[:2] or ("", "")
            failures.append(Failure(event, source, _number(fields, "t") or 0.0))
    return failures


def _strings(value: Any) -> list[str]:
    entries = value.get("L") if isinstance(value, Mapping) else None
    return [e["S"] for e in entries or [] if isinstance(e, Mapping) and isinstance(e.get("S"), str)]


def _item(state: BreakerState) -> tuple[list[str], dict[str, Any]]:
    """The attribute names to remove (``None`` times) and the attributes to set, for ``state``."""
    values: dict[str, Any] = {
        "state": {"S": "open" if state.is_open else "closed"},
        "probe_after": _n(state.probe_after),
        "failures": {"L": [{"M": {"e": {"S": f.event}, "s": {"S": f.source}, "t": _n(f.at)}} for f in state.failures]},
        "probed": {"L": [{"S": p} for p in state.probed]},
        "openings": _n(state.openings),
        "version": _n(state.version),
    }
    removed = []
    for name in ("opened_at", "closed_at", "last_delivery_at"):
        at = getattr(state, name)
        if at is None:
            removed.append(name)
        else:
            values[name] = _n(at)
    return removed, values


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

    def read(self, *, consistent: bool = False) -> BreakerState:
        answer = self._client.get_item(
            TableName=self.table_name, Key={PK: {"S": BREAKER_KEY}}, ConsistentRead=consistent
        )
        item = answer.get("Item")
        return _state(item) if item else CLOSED

    def write(self, state: BreakerState, *, expected_version: int, now: float) -> bool:
        removed, values = _item(replace(state, version=expected_version + 1))
        values[TTL_ATTRIBUTE] = _n(int(now) + ITEM_TTL_S)
        names = {f"#a{i}": name for i, name in enumerate([*values, *removed])}
        sets = ", ".join(f"#a{i} = :a{i}" for i in range(len(values)))
        removes = ", ".join(f"#a{i}" for i in range(len(values), len(names)))
        condition = "attribute_not_exists(#v)" if expected_version == 0 else "#v = :expected"
        names["#v"] = "version"
        attribute_values = {f":a{i}": value for i, value in enumerate(values.values())}
        if expected_version:
            attribute_values[":expected"] = _n(expected_version)
        try:
            self._client.update_item(
                TableName=self.table_name,
                Key={PK: {"S": BREAKER_KEY}},
                UpdateExpression=f"SET {sets}" + (f" REMOVE {removes}" if removes else ""),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attribute_values,
            )
        except Exception as exc:
            if _error_code(exc) == _CONDITION_FAILED:
                return False
            raise
        return True

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


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        if isinstance(error, Mapping):
            return str(error.get("Code", ""))
    return ""

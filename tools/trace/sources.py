"""Where trace looks: the idempotency table, the DLQs, the Lambdas' logs. Every AWS call of trace is here.

* **Idempotency table** (``kochava-<stage>-idempotency``): the deliverer's Powertools records are keyed by a hash
  of ``uuid`` + ``kind`` (:func:`tools.trace.core.key_data`), so a uuid's record is found with one consistent
  ``GetItem`` per kind (and per app GUID, for a key that includes the app): Powertools' own persistence layer
  computes the key, no table scan, in AWS as locally.
* **DLQs**: a read-only receive of each DLQ (as ``tools.dlq list`` does: every message is made visible again),
  matching the ``uuid`` attribute (or, for a body SQS redrove whole, the uuid in the body). DLQs are small and
  bounded by ``--scan-limit``; the live queues are never read (that would steal messages from the Lambdas).
* **Logs**: in AWS, one CloudWatch Logs Insights query (per 20 uuids) over the two functions' log groups
  ``/aws/lambda/kochava-<stage>-enricher|deliverer`` and the ``--since`` window; against the local stack, the
  Lambdas' log file ``tools.local`` writes. The Lambdas log JSON with the event uuid as ``correlation_id`` (the
  enricher's ``message processed`` line lists the uuids it forwarded and filtered); a text match only finds
  candidates, :func:`tools.trace.core.fact_of` decides.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from functions.names import ENV_KOCHAVA_APP_ID_ANDROID, ENV_KOCHAVA_APP_ID_IOS, IDEMPOTENCY_TABLE
from functions.pipeline.settings import Settings
from tools.dlq.sqs import DlqClient, Held, QueuePair
from tools.robust import epoch_ms
from tools.trace.core import DlqHit, Record, iso, key_candidates, parse_line, parse_time_ms, uuids_in

LogLine = tuple[int | None, dict[str, Any]]  # (epoch ms when known, the parsed JSON line)

INSIGHTS_UUIDS_PER_QUERY: Final = 20
INSIGHTS_LIMIT: Final = 10_000  # the most rows one Logs Insights query returns
INSIGHTS_DONE: Final = frozenset({"Complete", "Failed", "Cancelled", "Timeout", "Unknown"})


# ------------------------------------------------------------------------------------------- idempotency table


class IdempotencyTable:
    """Looks a uuid's delivery records up by their Powertools key (``GetItem``, consistent read)."""

    def __init__(self, dynamodb: Any, table_name: str) -> None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        from functions.deliverer.idempotency import KEY_PREFIX

        self.table_name = table_name
        self._store = DynamoDBPersistenceLayer(
            table_name=table_name,
            key_attr=IDEMPOTENCY_TABLE.partition_key,
            expiry_attr=IDEMPOTENCY_TABLE.ttl_attribute or "expiration",
            boto3_client=dynamodb,
        )
        self._store.configure(IdempotencyConfig(), key_prefix=KEY_PREFIX)

    def find(self, uuid: str, apps: Sequence[str] = ()) -> list[Record]:
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyItemNotFoundError

        records = []
        for kind, data in key_candidates(uuid, apps):
            try:
                found = self._store.get_record(data)
            except IdempotencyItemNotFoundError:
                continue
            if found is not None:
                records.append(
                    Record(
                        kind=kind,
                        status=_status(found),
                        data=_data(found),
                        # A DynamoDB number: a Decimal (issue 23: iso() crashed on it).
                        in_progress_until_ms=epoch_ms(found.in_progress_expiry_timestamp),
                    )
                )
        return records


def _status(found: Any) -> str:
    """The record's status; ``INVALID`` for one Powertools does not know (written by something else)."""
    try:
        return str(found.status)
    except Exception:  # Powertools' IdempotencyInvalidStatusError
        return "INVALID"


def _data(found: Any) -> dict[str, Any]:
    """The record's data as a dict; {} when it is not a JSON object (a record written by something else)."""
    try:
        data = found.response_json_as_dict()
    except (ValueError, TypeError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def configured_apps(env: Mapping[str, str]) -> list[str]:
    """The Kochava app GUIDs a Lambda environment configures (per platform and per bundle), sorted."""
    settings = Settings.from_env(env)
    guids = {settings.kochava_app_id_ios, settings.kochava_app_id_android, *settings.kochava_app_ids_by_bundle.values()}
    return sorted(g for g in guids if g)


def deployed_apps(lambda_client: Any, function_name: str) -> list[str]:
    """The app GUIDs of the deployed deliverer (``lambda:GetFunctionConfiguration``)."""
    config = lambda_client.get_function_configuration(FunctionName=function_name)
    return configured_apps((config.get("Environment") or {}).get("Variables") or {})


def local_apps(env: Mapping[str, str]) -> list[str]:
    """The app GUIDs ``tools.local`` gives its Lambdas: the environment's, else the demo ones."""
    from tools.samples import DEMO_APP_ID_ANDROID, DEMO_APP_ID_IOS

    return configured_apps(
        {
            **env,
            ENV_KOCHAVA_APP_ID_IOS: env.get(ENV_KOCHAVA_APP_ID_IOS) or DEMO_APP_ID_IOS,
            ENV_KOCHAVA_APP_ID_ANDROID: env.get(ENV_KOCHAVA_APP_ID_ANDROID) or DEMO_APP_ID_ANDROID,
        }
    )


# ------------------------------------------------------------------------------------------------------- DLQs


@dataclass
class DlqSearch:
    """What a read-only pass over the DLQs found: hits per uuid, and how many messages each DLQ showed."""

    hits: dict[str, list[DlqHit]] = field(default_factory=dict)
    scanned: dict[str, int] = field(default_factory=dict)
    truncated: list[str] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"{name} ({n} message(s) looked at)" for name, n in self.scanned.items()]
        if self.truncated:
            parts.append(f"stopped at --scan-limit in {', '.join(self.truncated)}")
        return ", ".join(parts) or "no DLQ"


def search_dlqs(client: DlqClient, pairs: Sequence[QueuePair], uuids: Sequence[str], limit: int | None) -> DlqSearch:
    """Every DLQ message carrying one of ``uuids``; every message received is made visible again."""
    wanted = frozenset(uuids)
    result = DlqSearch(hits={u: [] for u in uuids})
    for pair in pairs:
        seen = 0
        with Held(client, pair, limit=limit) as held:
            for batch in held.scan():
                seen += len(batch)
                for msg in batch:
                    for uuid in uuids_in(msg, wanted):
                        result.hits[uuid].append(DlqHit(pair.dlq_name, msg))
            if held.limit_reached:
                result.truncated.append(pair.dlq_name)
        result.scanned[pair.dlq_name] = seen
    return result


# ------------------------------------------------------------------------------------------------------- logs


class LogSource(Protocol):
    def lines(self, uuids: Sequence[str]) -> list[LogLine]:
        """The log lines that may be about ``uuids`` (candidates: :func:`~tools.trace.core.fact_of` decides)."""
        ...

    def describe(self) -> str:
        """What is searched, over which time range."""
        ...


class InsightsLogs:
    """CloudWatch Logs Insights over the Lambdas' log groups, ``start_ms`` .. ``end_ms``."""

    def __init__(
        self,
        logs: Any,
        groups: Sequence[str],
        start_ms: int,
        end_ms: int,
        *,
        poll_s: float = 1.0,
        timeout_s: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.logs = logs
        self.groups = list(groups)
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.sleep = sleep
        self.notes: list[str] = []

    def describe(self) -> str:
        where = ", ".join(self.groups)
        text = f"CloudWatch Logs Insights on {where} from {iso(self.start_ms)} to {iso(self.end_ms)}"
        return text + "".join(f" ({note})" for note in self.notes)

    @staticmethod
    def query(uuids: Sequence[str]) -> str:
        """The Logs Insights query for some uuids: every line whose text contains one of them, oldest first.

        >>> print(InsightsLogs.query(["u-1", 'odd"one']))
        fields @timestamp, @log, @message
        | filter @message like "u-1" or @message like "odd\\"one"
        | sort @timestamp asc
        | limit 10000
        """
        terms = " or ".join(f'@message like "{_quoted(u)}"' for u in uuids)
        return f"fields @timestamp, @log, @message\n| filter {terms}\n| sort @timestamp asc\n| limit {INSIGHTS_LIMIT}"

    def lines(self, uuids: Sequence[str]) -> list[LogLine]:
        out: list[LogLine] = []
        for start in range(0, len(uuids), INSIGHTS_UUIDS_PER_QUERY):
            out.extend(self._run(uuids[start : start + INSIGHTS_UUIDS_PER_QUERY]))
        return out

    def _run(self, uuids: Sequence[str]) -> list[LogLine]:
        query_id = self.logs.start_query(
            logGroupNames=self.groups,
            startTime=self.start_ms // 1000,
            endTime=-(-self.end_ms // 1000),  # whole seconds, rounded outwards
            queryString=self.query(uuids),
            limit=INSIGHTS_LIMIT,
        )["queryId"]
        waited = 0.0
        while True:
            answer = self.logs.get_query_results(queryId=query_id)
            status = str(answer.get("status", "Unknown"))
            if status in INSIGHTS_DONE:
                break
            if waited >= self.timeout_s:
                self.logs.stop_query(queryId=query_id)
                raise TimeoutError(f"the Logs Insights query did not finish in {self.timeout_s:.0f} s")
            self.sleep(self.poll_s)
            waited += self.poll_s
        if status != "Complete":
            raise RuntimeError(f"the Logs Insights query ended {status}")
        rows = answer.get("results") or []
        if len(rows) >= INSIGHTS_LIMIT:
            self.notes.append(f"{INSIGHTS_LIMIT} lines or more matched: only the oldest were read; narrow --since")
        return list(_insights_lines(rows))


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _insights_lines(rows: Sequence[Sequence[Mapping[str, str]]]) -> Iterator[LogLine]:
    for row in rows:
        fields = {str(f.get("field")): str(f.get("value", "")) for f in row}
        line = parse_line(fields.get("@message", ""))
        if line is not None:
            yield parse_time_ms(fields.get("@timestamp")), line


class LocalLogFile:
    """The Lambdas' JSON log lines as ``tools.local`` writes them to a file, ``start_ms`` .. ``end_ms``."""

    def __init__(self, path: Path, start_ms: int, end_ms: int) -> None:
        self.path = path
        self.start_ms = start_ms
        self.end_ms = end_ms

    def describe(self) -> str:
        return f"the local Lambdas' log {self.path} from {iso(self.start_ms)} to {iso(self.end_ms)}"

    def lines(self, uuids: Sequence[str]) -> list[LogLine]:
        if not self.path.is_file():
            raise FileNotFoundError(
                f"no Lambda log at {self.path}: is the local stack running (python -m tools.local, without "
                "--verbose)? Its log path is printed at start; pass it with --lambda-log"
            )
        out: list[LogLine] = []
        with self.path.open(encoding="utf-8", errors="replace") as lines:
            for text in lines:
                if not any(u in text for u in uuids):
                    continue
                line = parse_line(text)
                if line is None:
                    continue
                at = parse_time_ms(line.get("timestamp"))
                if at is None or self.start_ms <= at <= self.end_ms:
                    out.append((at, line))
        return out

"""What an erase does, in order: the device's profile items, then its DLQ messages. No printing, no arguments.

1. Profiles: the keys ``{app GUID}#{platform}#{device id}`` of every app (or the one ``--app`` names) are deleted
   one by one (``DeleteItem`` returns what the item held, so the report says which fields went): the enricher's
   key (the id normalised) and the keys profiles had before ids were normalised (as given, upper, lower case).
   The table is also scanned once (unless ``--no-scan``) for the device under any other spelling of its id, under
   GUIDs no longer configured or under another of its ids, and for the devices that store a ``--user-id``. Every
   key is then read back: an item there again (an enricher wrote it back) leaves the erase incomplete. What was
   not looked at is reported (:attr:`ProfileReport.not_looked`), so "removed 0" never stands for "not looked".
2. The ids those profiles held (advertising id, Kochava device id) join the device ids, so a DLQ message that names
   the device only by its IDFA is found too.
3. DLQs: every message is received (hidden while the tool works, made visible again when it is done, as
   ``tools.dlq`` does); a message of the device is deleted; a whole request body (batch) that also holds other
   devices' events is first re-sent to the same DLQ without the erased events (same attributes), then the original
   is deleted, so nobody else's event is lost.

Idempotent: a second run finds nothing and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from functions.names import ATTR_FAILED_AT_MS, SQS_MAX_MESSAGE_ATTRIBUTES
from tools.dlq.core import DlqMessage, message_summary
from tools.dlq.sqs import DlqClient, Held, Outgoing, QueuePair
from tools.privacy.aws import AppIds, ProfileTable
from tools.privacy.core import (
    Found,
    Verdict,
    Wanted,
    identifiers_of,
    judge_body,
    profile_keys,
    profile_matches,
    split_key,
)


@dataclass(frozen=True)
class Request:
    """Whose data to erase."""

    devices: tuple[tuple[str, str], ...] = ()  # (platform, device id)
    user_ids: tuple[str, ...] = ()
    bundle: str | None = None  # --app: only this app's profiles
    # Look through the whole table too (the default; --no-scan turns it off): the only way to find a profile stored
    # before ids were normalised under a spelling that cannot be guessed, or under a GUID no longer configured.
    scan_table: bool = True
    dry_run: bool = False


@dataclass
class ProfileReport:
    table: str
    app_ids: list[str] = field(default_factory=list)
    app_ids_source: str = ""
    keys_tried: int = 0
    scanned: int | None = None  # items read by a scan (None: no scan)
    deleted: list[Found] = field(default_factory=list)  # in a dry run: what would be deleted
    devices: list[tuple[str, str]] = field(default_factory=list)  # every (platform, device id) erased
    # Where the erase did not look (so "removed 0" is no proof nothing is stored): one sentence each.
    not_looked: list[str] = field(default_factory=list)
    checked: int = 0  # keys read back after the deletes (not in a dry run)
    remaining: list[str] = field(default_factory=list)  # keys still holding an item when read back: run again

    @property
    def complete(self) -> bool:
        """True when the erase looked everywhere a profile of the request can be and nothing came back."""
        return not self.not_looked and not self.remaining


@dataclass
class DlqReport:
    dlq: str
    scanned: int = 0
    deleted: list[dict[str, Any]] = field(default_factory=list)
    rewritten: list[dict[str, Any]] = field(default_factory=list)  # batches re-sent without the erased events
    failed: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    interrupted: bool = False
    copies: set[str] = field(default_factory=set)  # bodies this run wrote back (rewritten batches): not looked at


# ---------------------------------------------------------------------------------------------------- profiles


def erase_profiles(table: ProfileTable, app_ids: AppIds, request: Request) -> tuple[ProfileReport, Wanted]:
    """Delete (or, dry run, look up) every profile of the request's devices; returns the report and every id
    those devices are known by (to find their DLQ messages)."""
    report = ProfileReport(table=table.name, app_ids_source=app_ids.source)
    devices = list(dict.fromkeys(request.devices))
    wanted = Wanted.of([d for _, d in devices], request.user_ids)
    keys: list[str] = []
    if request.user_ids or request.scan_table:
        found_keys, scanned = _scan(table, wanted, frozenset(p for p, _ in devices))
        report.scanned = scanned
        for key in found_keys:
            parts = split_key(key)
            if parts is not None and (
                request.bundle is None or parts.app_id in _guids(app_ids, request, parts.platform)
            ):
                keys.append(key)
                devices.append((parts.platform, parts.device_id))
    else:
        report.not_looked.append(
            "the rest of the table (--no-scan): profiles stored before device ids were normalised under another "
            "spelling of the id, under a GUID no longer configured, or under another of the device's ids"
        )
    devices = list(dict.fromkeys(devices))
    for platform, device_id in devices:
        guids = _guids(app_ids, request, platform)
        report.app_ids.extend(g for g in guids if g not in report.app_ids)
        keys.extend(profile_keys(guids, platform, device_id))
        if not guids and not request.scan_table:
            report.not_looked.append(f"the {platform} profiles: no Kochava app GUID known for {platform}")
    keys = list(dict.fromkeys(keys))
    report.keys_tried = len(keys)
    report.devices = devices
    learned: list[str] = [d for _, d in devices]
    for key in keys:
        profile = table.get(key) if request.dry_run else table.delete(key)
        if profile is not None:
            report.deleted.append(Found(key, sorted(profile)))
            learned.extend(identifiers_of(profile))
    if not request.dry_run:
        _check_deleted(table, keys, report)
    return report, wanted.union(Wanted.of(learned))


def _check_deleted(table: ProfileTable, keys: list[str], report: ProfileReport) -> None:
    """Read every key back (a consistent read): an item there now was written after its delete (an enricher that
    read the profile just before), so the erase is not done."""
    report.checked = len(keys)
    report.remaining = [key for key in keys if table.get(key) is not None]


def _guids(app_ids: AppIds, request: Request, platform: str) -> list[str]:
    return app_ids.for_bundle(platform, request.bundle) if request.bundle else app_ids.for_platform(platform)


def _scan(table: ProfileTable, wanted: Wanted, platforms: frozenset[str]) -> tuple[list[str], int]:
    keys, scanned = [], 0
    for key, profile in table.scan():
        scanned += 1
        if profile_matches(key, profile, wanted, platforms):
            keys.append(key)
    return keys, scanned


# -------------------------------------------------------------------------------------------------------- DLQs


def erase_from_dlq(
    client: DlqClient,
    pair: QueuePair,
    wanted: Wanted,
    report: DlqReport,
    *,
    now_ms: int,
    dry_run: bool = False,
    limit: int | None = None,
) -> DlqReport:
    """Delete the messages of ``wanted`` from one DLQ (rewrite batches that hold others' events too).

    ``report`` is filled as it goes, so after an interruption or an AWS error it still tells what was done.
    """
    with Held(client, pair, limit=limit) as held:
        try:
            for batch in held.scan():
                for msg in batch:
                    if msg.body in report.copies:
                        continue
                    report.scanned += 1
                    verdict = judge_body(msg.body, wanted)
                    if verdict.action != "keep":
                        _apply(client, pair, held, msg, verdict, report, now_ms=now_ms, dry_run=dry_run)
        except KeyboardInterrupt:
            report.interrupted = True
            raise
        finally:
            report.truncated = held.limit_reached
    return report


def _apply(
    client: DlqClient,
    pair: QueuePair,
    held: Held,
    msg: DlqMessage,
    verdict: Verdict,
    report: DlqReport,
    *,
    now_ms: int,
    dry_run: bool,
) -> None:
    entry = {
        **message_summary(msg, now_ms),
        "matched": list(verdict.matched),
        "events_removed": verdict.removed_events,
        "events_kept": verdict.kept_events,
    }
    done = report.rewritten if verdict.action == "rewrite" else report.deleted
    if dry_run:
        done.append(entry)
        return
    if verdict.action == "rewrite":
        assert verdict.new_body is not None
        _, not_sent = client.send_batch(pair.dlq_url, [Outgoing(msg, verdict.new_body, _kept_attributes(msg))])
        if not_sent:
            report.failed.append(
                {**entry, "error": f"the copy without the erased events was refused: {not_sent[0][1]}"}
            )
            return
        report.copies.add(verdict.new_body)
    current = held.held_message(msg.message_id) or msg
    if client.delete_batch(pair.dlq_url, [current]):
        note = " (its copy without the erased events was sent: run again)" if verdict.action == "rewrite" else ""
        report.failed.append({**entry, "error": "could not delete it" + note})
        return
    held.forget([current])
    done.append(entry)


def _kept_attributes(msg: DlqMessage) -> dict[str, dict[str, str]]:
    """Every attribute of the original (it stays a DLQ message), plus ``failed_at_ms`` when it had none, so the
    copy keeps its age in ``tools.dlq list``."""
    out = {
        name: {k: v for k, v in value.items() if k in ("DataType", "StringValue")}
        for name, value in msg.attributes.items()
    }
    first = msg.first_failure_ms
    if ATTR_FAILED_AT_MS not in out and first is not None and len(out) < SQS_MAX_MESSAGE_ATTRIBUTES:
        out[ATTR_FAILED_AT_MS] = {"DataType": "Number", "StringValue": str(first)}
    return out


def removed_count(profiles: ProfileReport, dlqs: Iterable[DlqReport]) -> int:
    """Profile items plus DLQ messages deleted or rewritten (would be, in a dry run)."""
    return len(profiles.deleted) + sum(len(d.deleted) + len(d.rewritten) for d in dlqs)

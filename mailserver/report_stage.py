"""Pipeline stage `reports.link`: bounces (DSN) and read receipts (MDN) point at the sent
message they are about, whichever of the two is stored first (the model is pec/stage.py).

- A received message of the batch whose top-level Content-Type is multipart/report is read
  from the blob store and parsed (mailserver/reports.py): one MessageReport row per
  recipient it speaks of, linked to the sent message (direction "out") whose Message-ID it
  names, else left an orphan (refers_to_id NULL).
- A sent message of the batch adopts the earlier orphan rows that name its Message-ID.

Among several sent messages with that Message-ID, one in the report's own account wins,
then the oldest. Each link writes a MessageEvent on the sent message (actor "reports",
action = the recipient's state: bounced, delayed, delivered, read…). A report that cannot
be understood (no delivery-status part, garbage, unreadable blob) is kept like any message:
its problems go to a MessageEvent on the report itself (action "report-problem"), and no
row is written when it names no recipient. Ordinary received mail costs nothing here (the
headers are already parsed), a batch with sent mail one query; with reports, a few queries
per batch whatever its size, plus one blob read per report.

Casella never answers a Disposition-Notification-To: reading reports is all it does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from casella.blobs import BlobStore
from casella.models import Message, MessageEvent, MessageReport
from casella.settings import Settings
from mailserver.reports import (
    STATE_RANK,
    DeliveryReport,
    is_report,
    parse_report,
    recipient_state,
)

if TYPE_CHECKING:
    from casella.pipeline import StoredMessage

log = logging.getLogger(__name__)

__all__ = ["ReportLinkStage", "delivery_report_json", "describe", "list_reports", "pick_target", "recipient_reports",
           "report_json", "reports_for"]
ACTOR = "reports"
PROBLEM = "report-problem"


def pick_target(candidates: Iterable[tuple[int, str, int]], report_account: int) -> int | None:
    """The sent message to link a report to among (id, direction, account_id) rows: only a
    sent copy (direction "out"), the report's own account first, then the oldest."""
    eligible = [c for c in candidates if c[1] == "out"]
    if not eligible:
        return None
    return min(eligible, key=lambda c: (c[2] != report_account, c[0]))[0]


class ReportLinkStage:
    name = "reports.link"

    def __init__(self, settings: Settings) -> None:
        self.blobs = BlobStore(settings.blob_dir)

    def process(self, batch: Sequence[StoredMessage], session: Session) -> None:
        links: dict[int, int] = self._adopt_orphans(batch, session)  # report row id -> sent message id
        reports = {item.row.id: item for item in batch if _may_be_report(item)}
        if reports:
            # Idempotent: a message already read as a report (rows or a recorded problem) is left alone.
            done = set(session.scalars(select(MessageReport.message_id).where(MessageReport.message_id.in_(reports))))
            done |= set(session.scalars(select(MessageEvent.message_id).where(
                MessageEvent.message_id.in_(reports), MessageEvent.actor == ACTOR, MessageEvent.action == PROBLEM)))
            parsed = {rid: self._read(reports[rid]) for rid in sorted(set(reports) - done)}
            found = {rid: rep for rid, rep in parsed.items() if rep is not None}
            if found:
                links.update(self._store(found, reports, session))
        if links:
            self._write_events(links, session)
        session.flush()

    def _read(self, item: StoredMessage) -> DeliveryReport | None:
        """The report in the stored bytes; problems instead of an exception."""
        try:
            return parse_report(self.blobs.get(item.row.sha256), fallback_at=item.row.date)
        except Exception as exc:  # noqa: BLE001 - a broken report is recorded, the message kept
            log.warning("report %s (Message-ID %s) could not be read: %s", item.row.id, item.row.message_id, exc)
            problem = f"could not read the report: {type(exc).__name__}: {exc}"
            return DeliveryReport("dsn", None, (), None, None, (problem,))

    def _store(self, found: dict[int, DeliveryReport], items: dict[int, StoredMessage],
               session: Session) -> dict[int, int]:
        refs = {rep.refers_to_msgid for rep in found.values() if rep.refers_to_msgid and rep.recipients}
        by_msgid: dict[str, list[tuple[int, str, int]]] = {}
        if refs:
            for mid, msgid, direction, account_id in session.execute(
                    select(Message.id, Message.message_id, Message.direction, Message.account_id)
                    .where(Message.message_id.in_(refs), Message.direction == "out")):
                by_msgid.setdefault(msgid, []).append((mid, direction, account_id))
        rows: list[dict[str, Any]] = []
        problems: list[dict[str, Any]] = []
        for rid, rep in found.items():
            if rep.problems:
                problems.append({"message_id": rid, "actor": ACTOR, "action": PROBLEM,
                                 "detail": {"kind": rep.kind, "refers_to_msgid": rep.refers_to_msgid,
                                            "problems": list(rep.problems)}})
                log.info("report %s: %s", rid, "; ".join(rep.problems))
            target = pick_target(by_msgid.get(rep.refers_to_msgid or "", []), items[rid].account.id)
            for r in rep.recipients:
                rows.append({"message_id": rid, "kind": rep.kind, "refers_to_msgid": rep.refers_to_msgid,
                             "refers_to_id": target, "recipient": r.recipient, "action": r.action or "",
                             "status": r.status, "diagnostic": r.diagnostic, "at": r.at})
        if problems:
            session.execute(insert(MessageEvent), problems)
        if not rows:
            return {}
        session.execute(insert(MessageReport), rows)
        session.flush()
        linked = session.execute(select(MessageReport.id, MessageReport.refers_to_id).where(
            MessageReport.message_id.in_({r["message_id"] for r in rows}), MessageReport.refers_to_id.is_not(None)))
        return {row_id: sent for row_id, sent in linked}

    def _adopt_orphans(self, batch: Sequence[StoredMessage], session: Session) -> dict[int, int]:
        """Earlier reports waiting for a sent message of this batch (Sent read late)."""
        candidates: dict[str, list[tuple[int, str, int]]] = {}
        for item in batch:
            if item.row.message_id and item.row.direction == "out":
                candidates.setdefault(item.row.message_id, []).append(
                    (item.row.id, item.row.direction, item.account.id))
        if not candidates:
            return {}
        orphans = session.execute(
            select(MessageReport.id, MessageReport.refers_to_msgid, Message.account_id)
            .join(Message, Message.id == MessageReport.message_id)
            .where(MessageReport.refers_to_id.is_(None), MessageReport.refers_to_msgid.in_(set(candidates)))).all()
        links = {}
        for row_id, msgid, account_id in orphans:
            target = pick_target(candidates.get(msgid, []), account_id)
            if target is not None:
                links[row_id] = target
        if links:
            session.execute(update(MessageReport), [{"id": i, "refers_to_id": sent} for i, sent in links.items()])
        return links

    def _write_events(self, links: dict[int, int], session: Session) -> None:
        rows = {r.id: r for r in session.scalars(select(MessageReport).where(MessageReport.id.in_(links)))}
        events = []
        for row_id, sent in sorted(links.items()):
            r = rows[row_id]
            text = describe(r.kind, r.action, r.recipient, r.status, r.diagnostic, r.at)
            events.append({"message_id": sent, "actor": ACTOR, "action": recipient_state(r.action)[:64],
                           "detail": {"report": r.message_id, "kind": r.kind, "recipient": r.recipient,
                                      "status": r.status, "diagnostic": r.diagnostic, "at": _iso(r.at),
                                      "text": text}})
        session.execute(insert(MessageEvent), events)


def _may_be_report(item: StoredMessage) -> bool:
    """A received, non-PEC message whose top-level Content-Type is multipart/report. PEC
    receipts are pec.link's; a report in a Sent folder is one somebody here sent."""
    if getattr(item, "pec", None) is not None or item.row.direction != "in":
        return False
    return is_report(item.parsed.headers)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def describe(kind: str, action: str, recipient: str | None, status: str | None, diagnostic: str | None,
             at: datetime | None) -> str:
    """One line for people: "read by anna@example.com at 2026-11-23 10:02 UTC",
    "bounced for x@example.com: 5.1.1 550 5.1.1 User unknown"."""
    who = recipient or "an unknown recipient"
    when = f" at {at:%Y-%m-%d %H:%M} UTC" if at is not None else ""
    state = recipient_state(action)
    if kind == "mdn":
        verb = {"read": "read", "deleted": "deleted unread", "dispatched": "dispatched (not read)",
                "processed": "processed (not read)"}.get(state, state)
        return f"{verb} by {who}{when}"
    detail = " ".join(x for x in (status, diagnostic) if x)
    return f"{state} for {who}{when}" + (f": {detail}" if detail else "")


def report_json(row: MessageReport) -> dict[str, Any]:
    return {"kind": row.kind, "recipient": row.recipient, "action": row.action, "state": recipient_state(row.action),
            "status": row.status, "diagnostic": row.diagnostic, "at": _iso(row.at), "report_message": row.message_id,
            "text": describe(row.kind, row.action, row.recipient, row.status, row.diagnostic, row.at)}


def reports_for(session: Session, message_id: int) -> list[dict[str, Any]]:
    """The delivery reports linked to the sent message `message_id`, oldest first:
    [{kind, recipient, action, state, status, diagnostic, at, report_message, text}]."""
    rows = session.scalars(select(MessageReport).where(MessageReport.refers_to_id == message_id)
                           .order_by(MessageReport.at, MessageReport.id))
    return [report_json(r) for r in rows]


def recipient_reports(session: Session, message_ids: Iterable[int]) -> dict[int, dict[str, MessageReport]]:
    """For each sent message, the report that says most about each recipient (a final answer
    over a transient one, a read receipt over all, then the latest): one query."""
    ids = set(message_ids)
    out: dict[int, dict[str, MessageReport]] = {}
    if not ids:
        return out
    for row in session.scalars(select(MessageReport).where(MessageReport.refers_to_id.in_(ids))
                               .order_by(MessageReport.id)):
        key = (row.recipient or "").lower()
        best = out.setdefault(row.refers_to_id or 0, {})
        if key not in best or _weight(row) >= _weight(best[key]):
            best[key] = row
    return out


def _weight(row: MessageReport) -> tuple[int, float, int]:
    return STATE_RANK.get(recipient_state(row.action), 0), row.at.timestamp() if row.at else 0.0, row.id


def delivery_report_json(session: Session, message_id: int) -> dict[str, Any] | None:
    """What the stored message `message_id` reports, when it is a DSN or MDN:
    {kind, refers_to_msgid, refers_to, recipients: [...], problems: [...]}; else None."""
    rows = list(session.scalars(select(MessageReport).where(MessageReport.message_id == message_id)
                                .order_by(MessageReport.id)))
    problem = session.scalars(select(MessageEvent).where(
        MessageEvent.message_id == message_id, MessageEvent.actor == ACTOR, MessageEvent.action == PROBLEM)
        .order_by(MessageEvent.id)).first()
    if not rows and problem is None:
        return None
    detail = problem.detail if problem is not None else {}
    return {"kind": rows[0].kind if rows else detail.get("kind"),
            "refers_to_msgid": rows[0].refers_to_msgid if rows else detail.get("refers_to_msgid"),
            "refers_to": rows[0].refers_to_id if rows else None,
            "recipients": [report_json(r) for r in rows], "problems": list(detail.get("problems", []))}


def list_reports(session: Session, *, orphans: bool = False, limit: int = 200) -> list[dict[str, Any]]:
    """Newest first, one entry per report row (and per report with problems but no row):
    {id, message, kind, refers_to_msgid, refers_to, recipient, action, state, status,
    diagnostic, at, text, problems}. With `orphans`, only those not linked to a sent message."""
    query = select(MessageReport).order_by(MessageReport.id.desc()).limit(limit)
    if orphans:
        query = query.where(MessageReport.refers_to_id.is_(None))
    rows = list(session.scalars(query))
    problems: dict[int, dict[str, Any]] = {}
    for mid, detail in session.execute(select(MessageEvent.message_id, MessageEvent.detail).where(
            MessageEvent.actor == ACTOR, MessageEvent.action == PROBLEM).order_by(MessageEvent.id.desc()).limit(limit)):
        problems.setdefault(mid, detail or {})
    out = [{"id": r.id, "message": r.message_id, "kind": r.kind, "refers_to_msgid": r.refers_to_msgid,
            "refers_to": r.refers_to_id, **{k: v for k, v in report_json(r).items() if k != "report_message"},
            "problems": list(problems.get(r.message_id, {}).get("problems", []))} for r in rows]
    with_rows = {r.message_id for r in rows} | set(session.scalars(select(MessageReport.message_id).where(
        MessageReport.message_id.in_(problems))))
    for mid, detail in problems.items():  # reports that name no recipient: never linked
        if mid not in with_rows:
            out.append({"id": None, "message": mid, "kind": detail.get("kind"),
                        "refers_to_msgid": detail.get("refers_to_msgid"), "refers_to": None, "recipient": None,
                        "action": "", "state": "unknown", "status": None, "diagnostic": None, "at": None,
                        "text": "a report that names no recipient", "problems": list(detail.get("problems", []))})
    return out

"""What Casella shows about stored PEC messages: the `pec` of `casella message show --json`,
orphan receipts and overdue sent PEC (`casella pec orphans|overdue`).

A sent PEC is a message of a PEC account in a sent folder (direction "out"): the copy the
user sent carries no PEC header itself, its receipts (linked by pec/stage.py) say what
happened to it, recipient by recipient (pec/receipts.py). It is overdue when it is older
than `pec_delivery_timeout_hours` and some recipient is still pending or only accepted.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casella.models import Account, Message, MessagePec, utcnow
from pec.classify import RECEIPT_KINDS
from pec.receipts import delivery_states

__all__ = ["UNDELIVERED", "deliveries", "is_overdue", "orphan_receipts", "overdue_sent", "pec_json",
           "recipients_of", "sent_at"]

UNDELIVERED = ("pending", "accepted")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def recipients_of(msg: Message) -> list[str]:
    """To and Cc addresses, in order, without repeats."""
    seen: dict[str, None] = {}
    for entry in [*(msg.to or []), *(msg.cc or [])]:
        addr = str((entry or {}).get("addr") or "").strip().lower()
        if addr:
            seen.setdefault(addr, None)
    return list(seen)


def sent_at(msg: Message) -> datetime:
    return msg.date or msg.received_at or msg.stored_at


def deliveries(msg: Message, receipts: list[MessagePec]) -> list[dict[str, Any]]:
    states = delivery_states(recipients_of(msg), receipts)
    return [{"recipient": addr, "state": s["state"], "at": _iso(s["at"]), "error": s["error"]}
            for addr, s in states.items()]


def is_overdue(msg: Message, rows: list[dict[str, Any]], timeout_hours: float, now: datetime | None = None) -> bool:
    if not rows:
        return False
    late = sent_at(msg) <= (now or utcnow()) - timedelta(hours=timeout_hours)
    return late and any(r["state"] in UNDELIVERED for r in rows)


def _linked(session: Session, ids: list[int]) -> dict[int, list[tuple[Message, MessagePec]]]:
    out: dict[int, list[tuple[Message, MessagePec]]] = defaultdict(list)
    if ids:
        for receipt, pec in session.execute(
                select(Message, MessagePec).join(MessagePec, MessagePec.message_id == Message.id)
                .where(MessagePec.refers_to_id.in_(ids)).order_by(Message.id)):
            out[pec.refers_to_id].append((receipt, pec))
    return out


def pec_json(session: Session, msg: Message, account: Account | None, timeout_hours: float) -> dict[str, Any] | None:
    """The `pec` of a message's JSON; None for ordinary mail."""
    row = session.get(MessagePec, msg.id)
    linked = _linked(session, [msg.id]).get(msg.id, [])
    sent = msg.direction == "out" and (bool(account and account.is_pec) or bool(linked))
    if row is None and not sent:
        return None
    data: dict[str, Any] = {
        "kind": row.kind if row else None,
        "receipt_form": row.receipt_form if row else None,
        "sender": row.sender if row else None,
        "at": _iso(row.at) if row else None,
        "signature": row.signature if row else None,
        "daticert": row.daticert if row else None,
        "refers_to_msgid": row.refers_to_msgid if row else None,
        "refers_to": row.refers_to_id if row else None,
        "problems": list(row.problems or []) if row else [],
        "deliveries": [],
        "receipts": [{"id": r.id, "kind": p.kind, "at": _iso(p.at)} for r, p in linked],
        "overdue": False,
    }
    if sent:
        rows = deliveries(msg, [p for _r, p in linked])
        data["deliveries"] = rows
        data["overdue"] = bool(account and account.is_pec) and is_overdue(msg, rows, timeout_hours)
    return data


def orphan_receipts(session: Session) -> list[dict[str, Any]]:
    """Receipts whose sent message is not stored (yet)."""
    accounts = dict(session.execute(select(Account.id, Account.name)).all())
    return [{"id": m.id, "account": accounts.get(m.account_id, ""), "kind": p.kind, "receipt_form": p.receipt_form,
             "refers_to_msgid": p.refers_to_msgid, "sender": p.sender, "at": _iso(p.at),
             "stored_at": _iso(m.stored_at), "problems": list(p.problems or [])}
            for m, p in session.execute(
                select(Message, MessagePec).join(MessagePec, MessagePec.message_id == Message.id)
                .where(MessagePec.refers_to_id.is_(None), MessagePec.kind.in_(RECEIPT_KINDS))
                .order_by(Message.id))]


def overdue_sent(session: Session, timeout_hours: float, *, batch: int = 500) -> list[dict[str, Any]]:
    """Sent PEC older than the timeout with a recipient still pending or only accepted."""
    now = utcnow()
    accounts = dict(session.execute(select(Account.id, Account.name).where(Account.is_pec.is_(True))).all())
    out: list[dict[str, Any]] = []
    if not accounts:
        return out
    cutoff = now - timedelta(hours=timeout_hours)
    query = (select(Message).where(Message.account_id.in_(accounts), Message.direction == "out",
                                   func.coalesce(Message.date, Message.received_at, Message.stored_at) <= cutoff)
             .order_by(Message.id))
    last_id = 0
    while True:
        msgs = list(session.scalars(query.where(Message.id > last_id).limit(batch)))
        if not msgs:
            return out
        linked = _linked(session, [m.id for m in msgs])
        for msg in msgs:
            rows = deliveries(msg, [p for _r, p in linked.get(msg.id, [])])
            if is_overdue(msg, rows, timeout_hours, now):
                out.append({"id": msg.id, "account": accounts[msg.account_id], "message_id": msg.message_id,
                            "subject": msg.subject, "date": _iso(msg.date), "sent_at": _iso(sent_at(msg)),
                            "deliveries": rows,
                            "undelivered": [r["recipient"] for r in rows if r["state"] in UNDELIVERED]})
        last_id = msgs[-1].id

"""`casella rules replay --since DATE [--apply]`: today's rules over past mail.

The same code as the pipeline stage runs on every message dated on or after DATE (the
storing time when a message has no Date), in id order, in batches. Without --apply the
caller rolls the transaction back, so the report shows exactly what would change (which
member round-robin would pick, which pratica would be opened) and nothing does. Actions
that would change nothing are not repeated, so replaying twice is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from casella.blobs import BlobStore
from casella.errors import NotFound
from casella.models import Account, Message
from routing.route import route, routables
from routing.stored_rules import load_rules


@dataclass(slots=True)
class ReplayReport:
    applied: bool
    since: str
    examined: int = 0
    matched: int = 0
    changed: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)  # those a rule matched

    def as_json(self) -> dict[str, Any]:
        return {"applied": self.applied, "since": self.since, "examined": self.examined, "matched": self.matched,
                "changed": self.changed, "messages": self.messages}


def replay(session: Session, blobs: BlobStore | None, since: datetime, *, apply: bool,
           account: str | None = None, batch_size: int = 500) -> ReplayReport:
    """Route past mail again in `session`; the caller commits (apply) or rolls back."""
    report = ReplayReport(applied=apply, since=since.date().isoformat())
    query = select(Message).where(or_(Message.date >= since,
                                      and_(Message.date.is_(None), Message.stored_at >= since)))
    if account is not None:
        account_id = session.scalar(select(Account.id).where(Account.name == account))
        if account_id is None:
            raise NotFound(f"no account named {account!r}; `casella account list` shows them")
        query = query.where(Message.account_id == account_id)
        book = load_rules(session, [account_id])
    else:
        book = load_rules(session, None)
    if not book:
        return report
    rules = book.all()
    last_id = 0
    while True:
        rows = list(session.scalars(query.where(Message.id > last_id).order_by(Message.id).limit(batch_size)))
        if not rows:
            return report
        last_id = rows[-1].id
        items = list(zip(rows, routables(session, rows, blobs=blobs, rules=rules), strict=True))
        evaluations, changes = route(session, items, book, via="replay")
        by_message: dict[int, list[dict[str, Any]]] = {}
        for change in changes:
            by_message.setdefault(change.message_id, []).append(
                {"rule": change.rule, "action": change.action, "detail": change.detail})
        for row, ev in zip(rows, evaluations, strict=True):
            report.examined += 1
            if not ev.matched:
                continue
            report.matched += 1
            done = by_message.get(row.id, [])
            report.changed += any(c["action"] != "skipped" for c in done)
            report.messages.append({"id": row.id, "subject": row.subject, "from": row.from_addr,
                                    "rules": list(ev.matched), "changes": done})
        session.flush()
        session.expunge_all()  # keep memory flat over a long history

"""The outbound queue as people and scripts see it (`casella outbox list --json`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casella.models import Account, Message, Registration
from casella.models.outbound import OutboundMessage


def list_outbox(session: Session, *, state: str | None = None, account: str | None = None,
                limit: int = 200) -> list[dict[str, Any]]:
    """Newest first: one entry per queued message with its state, attempts and last error."""
    query = (select(OutboundMessage, Account.name, Message.subject, Registration)
             .join(Account, Account.id == OutboundMessage.account_id)
             .join(Message, Message.id == OutboundMessage.message_id)
             .outerjoin(Registration, Registration.message_id == OutboundMessage.message_id)
             .order_by(OutboundMessage.id.desc()).limit(limit))
    if state is not None:
        query = query.where(OutboundMessage.state == state)
    if account is not None:
        query = query.where(Account.name == account)
    rows = []
    for row, account_name, subject, registration in session.execute(query):
        rows.append({
            "id": row.id, "message": row.message_id, "account": account_name,
            "protocol": registration.label if registration is not None else None,
            "subject": subject, "message_id": row.smtp_message_id, "mail_from": row.mail_from,
            "rcpt_tos": list(row.rcpt_tos), "state": row.state, "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at.isoformat()
            if row.next_attempt_at and row.state in ("queued", "deferred") else None,
            "last_error": row.last_error, "created_at": row.created_at.isoformat(),
            "sent_at": row.sent_at.isoformat() if row.sent_at else None,
        })
    return rows

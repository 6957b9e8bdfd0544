"""The outbound queue as people and scripts see it (`casella outbox list --json`).

Each entry lists its `recipients` with what is known of each: the delivery report that
says most about it (bounced, delayed, delivered, read…: mailserver/report_stage.py), else
the queue's own state for the whole message (queued, sending, sent, deferred, failed)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casella.models import Account, Message, MessageReport, Registration
from casella.models.outbound import OutboundMessage
from mailserver.report_stage import recipient_reports
from mailserver.reports import recipient_state


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
    found = session.execute(query).all()
    reports = recipient_reports(session, (row.message_id for row, *_ in found))
    for row, account_name, subject, registration in found:
        rows.append({
            "id": row.id, "message": row.message_id, "account": account_name,
            "protocol": registration.label if registration is not None else None,
            "subject": subject, "message_id": row.smtp_message_id, "mail_from": row.mail_from,
            "rcpt_tos": list(row.rcpt_tos), "state": row.state, "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at.isoformat()
            if row.next_attempt_at and row.state in ("queued", "deferred") else None,
            "last_error": row.last_error, "created_at": row.created_at.isoformat(),
            "sent_at": row.sent_at.isoformat() if row.sent_at else None,
            "recipients": recipients_json(row, reports.get(row.message_id, {})),
        })
    return rows


def recipients_json(row: OutboundMessage, reports: dict[str, MessageReport]) -> list[dict[str, Any]]:
    """[{address, state, status, diagnostic, at, report_message}] for each envelope recipient,
    then for each address a report names that the envelope did not (an alias expanded)."""
    out = []
    addresses = list(dict.fromkeys(a.lower() for a in row.rcpt_tos))
    for address in addresses + sorted(set(reports) - set(addresses)):
        rep = reports.get(address)
        if rep is None:
            out.append({"address": address or None, "state": row.state, "status": None, "diagnostic": None,
                        "at": None, "report_message": None})
        else:
            out.append({"address": address or None, "state": recipient_state(rep.action), "status": rep.status,
                        "diagnostic": rep.diagnostic, "at": rep.at.isoformat() if rep.at else None,
                        "report_message": rep.message_id})
    return out

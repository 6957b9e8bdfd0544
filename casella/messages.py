"""How a stored message is shown to scripts: the JSON of `casella message list/show`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casella.models import (
    Account, Attachment, Company, Contact, Group, Message, MessageEvent, MessageLocation, MessagePec, MessagePratica,
    MessageTag, Pratica, Registration, User, format_protocol,
)
from casella.settings import Settings, get_settings
from mailserver.report_stage import delivery_report_json, reports_for
from pec.classify import RECEIPT_KINDS
from pec.status import pec_json


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def iter_summaries(session: Session, *, account: str | None = None, unknown_only: bool = False,
                   batch: int = 1000) -> Iterator[dict[str, Any]]:
    """One dict per message, oldest first, streamed in batches (constant memory)."""
    accounts = dict(session.execute(select(Account.id, Account.name)).all())
    people = _people(session)
    query = (select(Message, Registration.year, Registration.number, MessagePec.kind)
             .outerjoin(Registration, Registration.message_id == Message.id)
             .outerjoin(MessagePec, MessagePec.message_id == Message.id).order_by(Message.id))
    if account is not None:
        query = query.join(Account, Account.id == Message.account_id).where(Account.name == account)
    if unknown_only:
        # PEC receipts come from the provider's address: never an unknown correspondent.
        query = query.where(Message.link_kind == "unknown",
                            (MessagePec.kind.is_(None)) | (MessagePec.kind.not_in(RECEIPT_KINDS)))
    last_id = 0
    while True:
        rows = session.execute(query.where(Message.id > last_id).limit(batch)).all()
        if not rows:
            return
        names = _link_names(session, [r[0] for r in rows])
        for msg, year, number, pec_kind in rows:
            yield summary(msg, accounts.get(msg.account_id, ""), year, number, names, people, pec_kind=pec_kind)
        last_id = rows[-1][0].id


def _link_names(session: Session, msgs: list[Message]) -> dict[tuple[str, int], str]:
    contact_ids = {m.contact_id for m in msgs if m.link_kind == "contact" and m.contact_id}
    company_ids = {m.company_id for m in msgs if m.link_kind == "company" and m.company_id}
    names: dict[tuple[str, int], str] = {}
    if contact_ids:
        names.update((("contact", i), n) for i, n in session.execute(
            select(Contact.id, Contact.name).where(Contact.id.in_(contact_ids))))
    if company_ids:
        names.update((("company", i), n) for i, n in session.execute(
            select(Company.id, Company.name).where(Company.id.in_(company_ids))))
    return names


def _people(session: Session) -> dict[tuple[str, int], str]:
    """Usernames and group names by id (few rows: loaded once per listing)."""
    out = {("user", i): n for i, n in session.execute(select(User.id, User.username)).all()}
    out.update({("group", i): n for i, n in session.execute(select(Group.id, Group.name)).all()})
    return out


def summary(msg: Message, account: str, year: int | None, number: int | None,
            names: dict[tuple[str, int], str], people: dict[tuple[str, int], str] | None = None, *,
            pec_kind: str | None = None) -> dict[str, Any]:
    people = people or {}
    link_id = msg.contact_id if msg.link_kind == "contact" else msg.company_id if msg.link_kind == "company" else None
    return {
        "id": msg.id,
        "account": account,
        "folder": msg.folder,
        "direction": msg.direction,
        "message_id": msg.message_id,
        "subject": msg.subject,
        "from": {"name": msg.from_name, "addr": msg.from_addr},
        "to": msg.to,
        "date": _iso(msg.date),
        "stored_at": _iso(msg.stored_at),
        "sha256": msg.sha256,
        "size": msg.size,
        "thread_id": msg.thread_id,
        "protocol": format_protocol(year, number) if year is not None and number is not None else None,
        "link": {"kind": msg.link_kind, "id": link_id,
                 "name": names.get((msg.link_kind, link_id)) if link_id is not None else None},
        "has_attachments": msg.has_attachments,
        "status": msg.status,
        "assigned_user": people.get(("user", msg.assigned_user_id)) if msg.assigned_user_id else None,
        "assigned_group": people.get(("group", msg.assigned_group_id)) if msg.assigned_group_id else None,
        "agent": msg.agent,
        "is_public": msg.is_public,
        "pec_kind": pec_kind,  # pec.classify.KINDS; None for ordinary mail
    }


def detail(session: Session, msg: Message, settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    reg = session.scalar(select(Registration).where(Registration.message_id == msg.id))
    account = session.get(Account, msg.account_id)
    pec = pec_json(session, msg, account, settings.pec_delivery_timeout_hours)
    data = summary(msg, account.name if account else "", reg.year if reg else None, reg.number if reg else None,
                   _link_names(session, [msg]), _people(session), pec_kind=pec["kind"] if pec else None)
    data.update({
        "cc": msg.cc,
        "in_reply_to": msg.in_reply_to,
        "references": msg.references,
        "received_at": _iso(msg.received_at),
        "text": msg.body_text,
        "html": msg.body_html,
        "attachments": [
            {"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size,
             "sha256": a.sha256, "content_id": a.content_id, "inline": a.inline}
            for a in session.scalars(select(Attachment).where(Attachment.message_id == msg.id).order_by(Attachment.position))
        ],
        "defects": msg.defects,
        "parse_engine": msg.parse_engine,
        "locations": [
            {"folder": loc.folder, "uidvalidity": loc.uidvalidity, "uid": loc.uid, "seen_at": _iso(loc.seen_at)}
            for loc in session.scalars(select(MessageLocation).where(MessageLocation.message_id == msg.id)
                                       .order_by(MessageLocation.id))
        ],
        "registration": registration_json(reg) if reg else None,
        "tags": sorted(session.scalars(select(MessageTag.tag).where(MessageTag.message_id == msg.id))),
        "pratiche": sorted(session.scalars(select(Pratica.code).join(MessagePratica, MessagePratica.pratica_id == Pratica.id)
                                           .where(MessagePratica.message_id == msg.id))),
        "history": [
            {"at": _iso(e.at), "actor": e.actor, "action": e.action, "detail": e.detail}
            for e in session.scalars(select(MessageEvent).where(MessageEvent.message_id == msg.id).order_by(MessageEvent.id))
        ],
        "pec": pec,
        # Bounces and read receipts about this (sent) message; [] for any other message.
        "reports": reports_for(session, msg.id),
        # What this message is, when it is a DSN or MDN itself: None otherwise.
        "delivery_report": delivery_report_json(session, msg.id),
    })
    return data


def registration_json(reg: Registration) -> dict[str, Any]:
    return {
        "protocol": reg.label,
        "year": reg.year,
        "number": reg.number,
        "registered_at": _iso(reg.registered_at),
        "direction": reg.direction,
        "correspondent": reg.correspondent,
        "subject": reg.subject,
        "sha256": reg.sha256,
        "message": reg.message_id,
        "cancelled": reg.cancelled_at is not None,
        "cancelled_at": _iso(reg.cancelled_at),
        "cancelled_by": reg.cancelled_by,
        "cancel_reason": reg.cancel_reason,
    }

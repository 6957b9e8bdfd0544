"""Pratiche (cases): a code, a title, a company, a status and an owner; a message can belong
to several. Opened by hand (`casella pratica add`) or by the rule action `link-pratica`,
which opens a missing one with the linked company of the first message that names it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casella.errors import NotFound
from casella.models import (
    PRATICA_STATUSES, Account, Company, Message, MessagePratica, Pratica, Registration, User, format_protocol,
)
from routing.errors import PraticaError


def _company_id(session: Session, name: str) -> int:
    ids = list(session.scalars(select(Company.id).where(Company.name == name).limit(2)))
    if not ids:
        raise NotFound(f"no company named {name!r}; `casella contacts export` lists them")
    if len(ids) > 1:
        raise PraticaError(f"several companies are named {name!r}; tidy the anagrafica first")
    return ids[0]


def add_pratica(session: Session, code: str, title: str, *, company: str | None = None, owner: str | None = None,
                status: str = "open") -> Pratica:
    code = " ".join(code.split())
    if not code or len(code) > 120:
        raise PraticaError("a pratica code is 1 to 120 characters")
    if status not in PRATICA_STATUSES:
        raise PraticaError(f"status {status!r} is not one of {', '.join(PRATICA_STATUSES)}")
    if session.scalar(select(Pratica.id).where(Pratica.code == code)) is not None:
        raise PraticaError(f"a pratica with code {code!r} exists already")
    if owner is not None and session.scalar(select(User.id).where(User.username == owner)) is None:
        raise NotFound(f"no user named {owner!r}; `casella user list` shows them")
    pratica = Pratica(code=code, title=title, status=status, owner=owner,
                      company_id=_company_id(session, company) if company else None)
    session.add(pratica)
    session.flush()
    return pratica


def list_pratiche(session: Session, status: str | None = None) -> list[dict[str, Any]]:
    if status is not None and status not in PRATICA_STATUSES:
        raise PraticaError(f"status {status!r} is not one of {', '.join(PRATICA_STATUSES)}")
    counts = (select(MessagePratica.pratica_id, func.count(MessagePratica.message_id).label("n"))
              .group_by(MessagePratica.pratica_id).subquery())
    query = (select(Pratica, Company.name, counts.c.n)
             .outerjoin(Company, Company.id == Pratica.company_id)
             .outerjoin(counts, counts.c.pratica_id == Pratica.id).order_by(Pratica.code))
    if status is not None:
        query = query.where(Pratica.status == status)
    return [_pratica_json(p, company, n or 0) for p, company, n in session.execute(query)]


def _pratica_json(p: Pratica, company: str | None, messages: Any) -> dict[str, Any]:
    return {"code": p.code, "title": p.title, "company": company, "company_id": p.company_id, "status": p.status,
            "owner": p.owner, "created_at": p.created_at.isoformat() if p.created_at else None,
            "messages": messages}


def show_pratica(session: Session, code: str) -> dict[str, Any]:
    found = session.execute(select(Pratica, Company.name).outerjoin(Company, Company.id == Pratica.company_id)
                            .where(Pratica.code == code)).first()
    if found is None:
        raise NotFound(f"no pratica with code {code!r}; `casella pratica list` shows them")
    pratica, company = found
    rows = session.execute(
        select(Message, Account.name, Registration.year, Registration.number)
        .join(MessagePratica, MessagePratica.message_id == Message.id)
        .join(Account, Account.id == Message.account_id)
        .outerjoin(Registration, Registration.message_id == Message.id)
        .where(MessagePratica.pratica_id == pratica.id).order_by(Message.date, Message.id)).all()
    messages = [{"id": m.id, "account": account, "date": m.date.isoformat() if m.date else None,
                 "from": m.from_addr, "subject": m.subject, "direction": m.direction,
                 "protocol": format_protocol(year, number) if year is not None else None}
                for m, account, year, number in rows]
    return _pratica_json(pratica, company, messages)

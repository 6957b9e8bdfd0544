"""Contacts and companies (anagrafica): browse, search, edit, merge duplicates, and turn an
unknown sender into a contact or a company.

Agents see only the companies whose agent they are (and those companies' contacts): any
other card answers 404, as if it did not exist. Marketing reads but never changes.
Every change is written to the audit log; messages whose link changes get a history event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    cast,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException
from starlette.responses import Response

from anagrafica.freemail import is_freemail
from anagrafica.link import Link, resolve_links
from casella.access import visible_clause
from casella.models import (
    LIFECYCLES,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    Message,
    MessageEvent,
    Pratica,
    ProtocolRegistry,
    Registration,
    User,
    format_protocol,
)
from webmail.context import Ctx, route
from webmail.i18n import _
from webmail.mailbox import Filters, forget_counts, list_page, visible_message

PAGE = 50
EDITORS = ("admin", "manager", "operator", "agent")


# ---------------------------------------------------------------- access
def _company_scope(ctx: Ctx) -> ColumnElement[bool]:
    assert ctx.user is not None
    return Company.agent == ctx.user.username if ctx.user.role == "agent" else true()


def _contact_scope(ctx: Ctx) -> ColumnElement[bool]:
    assert ctx.user is not None
    if ctx.user.role != "agent":
        return true()
    return Contact.company_id.in_(select(Company.id).where(Company.agent == ctx.user.username))


def _company(ctx: Ctx, session: Session, company_id: int) -> Company:
    found = session.scalar(select(Company).where(Company.id == company_id, _company_scope(ctx)))
    if found is None:
        raise HTTPException(404)
    return found


def _contact(ctx: Ctx, session: Session, contact_id: int) -> Contact:
    found = session.scalar(select(Contact).where(Contact.id == contact_id, _contact_scope(ctx)))
    if found is None:
        raise HTTPException(404)
    return found


def _may_edit(ctx: Ctx) -> None:
    ctx.require_role(*EDITORS)


def _lines(text: str) -> list[str]:
    out: list[str] = []
    for part in text.replace(",", "\n").splitlines():
        part = part.strip().lower()
        if part and part not in out:
            out.append(part)
    return out


def _agents(session: Session) -> list[str]:
    return list(session.scalars(select(User.username).where(User.role == "agent", User.active.is_(True))
                                .order_by(User.username)))


# ---------------------------------------------------------------- relinking
def relink_unknown(session: Session, ctx: Ctx, *, emails: list[str], domains: list[str],
                   extra_freemail: frozenset[str] = frozenset()) -> int:
    """Link the still-unknown messages of these addresses or domains with the anagrafica as it is
    now (anagrafica/link.py's rules), each with a history event. Returns how many changed."""
    if not emails and not domains:
        return 0
    actor = ctx.user.username if ctx.user else "webmail"
    conds: list[ColumnElement[bool]] = []
    to_text = func.lower(cast(Message.to, String))
    for e in emails:
        conds += [func.lower(Message.from_addr) == e, to_text.contains(e)]
    for d in domains:
        conds += [func.lower(Message.from_addr).like(f"%@{d}"), func.lower(Message.from_addr).like(f"%.{d}"),
                  to_text.contains(f"@{d}"), to_text.contains(f".{d}")]
    rows = session.execute(select(Message.id, Message.direction, Message.from_addr, Message.to)
                           .where(Message.link_kind == "unknown", or_(*conds))).all()
    if not rows:
        return 0

    def correspondent(r: Any) -> str:
        if r.direction == "out":
            return str((r.to or [{}])[0].get("addr", "")).lower()
        return (r.from_addr or "").lower()

    addrs = {correspondent(r) for r in rows} - {""}
    links = resolve_links(session, addrs, extra_freemail)
    by_link: dict[Link, list[int]] = {}  # one UPDATE per distinct link, not one per message
    for r in rows:
        link = links.get(correspondent(r))
        if link is not None:
            by_link.setdefault(link, []).append(r.id)
    for link, ids in by_link.items():
        session.execute(update(Message).where(Message.id.in_(ids)).values(
            link_kind=link.kind, contact_id=link.contact_id, company_id=link.company_id))
        _record_events(session, ids, actor, "linked", {"kind": link.kind, "contact_id": link.contact_id,
                                                       "company_id": link.company_id})
    return sum(len(ids) for ids in by_link.values())


def _record_events(session: Session, message_ids: list[int], actor: str, action: str,
                   detail: dict[str, Any]) -> None:
    """The same event in the history of each of these messages, in one statement."""
    if message_ids:
        session.execute(insert(MessageEvent), [{"message_id": m, "actor": actor, "action": action, "detail": detail}
                                               for m in message_ids])


# ---------------------------------------------------------------- list
@route("/contacts", ("GET",))
def contacts_list(ctx: Ctx) -> Response:
    q = (ctx.query.get("q") or "").strip()
    page = max(1, int(ctx.query.get("page", "1")) if ctx.query.get("page", "1").isdigit() else 1)
    companies_q = select(Company).where(_company_scope(ctx))
    contacts_q = select(Contact).where(_contact_scope(ctx))
    if q:
        like = f"%{q.lower()}%"
        companies_q = companies_q.where(or_(
            func.lower(Company.name).like(like), func.lower(Company.vat_number).like(like),
            func.lower(Company.fiscal_code).like(like),
            exists().where(CompanyDomain.company_id == Company.id, CompanyDomain.domain.like(like)),
            exists().where(Contact.company_id == Company.id, func.lower(Contact.name).like(like)),
            exists().where(Contact.company_id == Company.id, ContactEmail.contact_id == Contact.id,
                           ContactEmail.email.like(like))))
        contacts_q = contacts_q.where(or_(
            func.lower(Contact.name).like(like),
            exists().where(ContactEmail.contact_id == Contact.id, ContactEmail.email.like(like))))
    companies = list(ctx.db.scalars(companies_q.order_by(func.lower(Company.name), Company.id)
                                    .offset((page - 1) * PAGE).limit(PAGE + 1)))
    contacts = list(ctx.db.scalars(contacts_q.order_by(func.lower(Contact.name), Contact.id)
                                   .offset((page - 1) * PAGE).limit(PAGE + 1)))
    more = len(companies) > PAGE or len(contacts) > PAGE
    companies, contacts = companies[:PAGE], contacts[:PAGE]
    domains: dict[int, list[str]] = {}
    if companies:
        for cid, dom in ctx.db.execute(select(CompanyDomain.company_id, CompanyDomain.domain)
                                       .where(CompanyDomain.company_id.in_([c.id for c in companies]))):
            domains.setdefault(cid, []).append(dom)
    emails: dict[int, list[str]] = {}
    if contacts:
        for cid, em in ctx.db.execute(select(ContactEmail.contact_id, ContactEmail.email)
                                      .where(ContactEmail.contact_id.in_([c.id for c in contacts]))):
            emails.setdefault(cid, []).append(em)
    linked = {c.company_id for c in contacts if c.company_id}
    names = dict(ctx.db.execute(select(Company.id, Company.name).where(Company.id.in_(linked))).all()) if linked else {}
    return ctx.render("contacts/list.html", q=q, page=page, more=more, companies=companies, contacts=contacts,
                      domains=domains, emails=emails, company_names=names)


# ---------------------------------------------------------------- company card
@route("/contacts/company/{company_id:int}", ("GET",))
def company_card(ctx: Ctx) -> Response:
    assert ctx.user is not None and ctx.grant is not None
    company = _company(ctx, ctx.db, ctx.params["company_id"])
    return _render_company(ctx, company)


def _render_company(ctx: Ctx, company: Company, *, error: str | None = None, notice: str | None = None,
                    status_code: int = 200, form: dict[str, str] | None = None) -> Response:
    assert ctx.user is not None and ctx.grant is not None
    domains = list(ctx.db.scalars(select(CompanyDomain.domain).where(CompanyDomain.company_id == company.id)
                                  .order_by(CompanyDomain.domain)))
    contacts = list(ctx.db.scalars(select(Contact).where(Contact.company_id == company.id).order_by(Contact.name)))
    emails: dict[int, list[str]] = {}
    for cid, em in ctx.db.execute(select(ContactEmail.contact_id, ContactEmail.email)
                                  .where(ContactEmail.contact_id.in_([c.id for c in contacts]))):
        emails.setdefault(cid, []).append(em)
    mail = list_page(ctx.db, ctx.grant, ctx.user.id, Filters(company_id=company.id), page_size=20)
    pratiche = list(ctx.db.scalars(select(Pratica).where(Pratica.company_id == company.id)
                                   .order_by(Pratica.created_at.desc())))
    protocol = ctx.db.execute(
        select(Registration, ProtocolRegistry.code).join(Message, Message.id == Registration.message_id)
        .join(ProtocolRegistry, ProtocolRegistry.id == Registration.registry_id)
        .where(Message.company_id == company.id, visible_clause(ctx.grant))
        .order_by(Registration.registered_at.desc(), Registration.id.desc()).limit(50)).all()
    others = list(ctx.db.execute(select(Company.id, Company.name).where(Company.id != company.id, _company_scope(ctx))
                                 .order_by(func.lower(Company.name)).limit(500)).all())
    values = form or {"name": company.name, "vat_number": company.vat_number or "",
                      "fiscal_code": company.fiscal_code or "", "lifecycle": company.lifecycle,
                      "agent": company.agent or "", "category": company.category or "", "domains": "\n".join(domains)}
    return ctx.render("contacts/company.html", status_code=status_code, company=company, domains=domains,
                      contacts=contacts, emails=emails, mail=mail, pratiche=pratiche, protocol=protocol,
                      others=others, values=values, lifecycles=LIFECYCLES, agents=_agents(ctx.db),
                      can_edit=ctx.user.role in EDITORS, error=error, notice=notice, format_protocol=format_protocol)


def _domains_taken(session: Session, domains: list[str], company_id: int | None) -> list[str]:
    if not domains:
        return []
    query = select(CompanyDomain.domain).where(CompanyDomain.domain.in_(domains))
    if company_id is not None:
        query = query.where(CompanyDomain.company_id != company_id)
    return list(session.scalars(query))


def _company_form(ctx: Ctx) -> dict[str, str]:
    return {k: ctx.f(k).strip() for k in ("name", "vat_number", "fiscal_code", "lifecycle", "agent", "category",
                                          "domains")}


def _check_company_form(ctx: Ctx, values: dict[str, str], company_id: int | None) -> str | None:
    if not values["name"]:
        return _("The company needs a name.")
    if values["lifecycle"] and values["lifecycle"] not in LIFECYCLES:
        return _("Choose a lifecycle from the list.")
    if values["agent"] and values["agent"] not in _agents(ctx.db):
        return _("Choose an agent from the list.")
    taken = _domains_taken(ctx.db, _lines(values["domains"]), company_id)
    if taken:
        return _("Domain %(d)s belongs to another company: merge the two companies instead.") % {"d": ", ".join(taken)}
    return None


@route("/contacts/company/{company_id:int}", ("POST",))
def company_edit(ctx: Ctx) -> Response:
    _may_edit(ctx)
    assert ctx.user is not None
    company = _company(ctx, ctx.db, ctx.params["company_id"])
    values = _company_form(ctx)
    if ctx.user.role == "agent":
        values["agent"] = company.agent or ""
    error = _check_company_form(ctx, values, company.id)
    if error:
        return _render_company(ctx, company, error=error, status_code=400, form=values)
    new_domains = _lines(values["domains"])
    with ctx.write() as w:
        row = w.get(Company, company.id)
        assert row is not None
        before = {"name": row.name, "vat_number": row.vat_number, "fiscal_code": row.fiscal_code,
                  "lifecycle": row.lifecycle, "agent": row.agent, "category": row.category}
        row.name = values["name"]
        row.vat_number = values["vat_number"] or None
        row.fiscal_code = values["fiscal_code"] or None
        row.lifecycle = values["lifecycle"] or row.lifecycle
        row.agent = values["agent"] or None
        row.category = values["category"] or None
        old = set(w.scalars(select(CompanyDomain.domain).where(CompanyDomain.company_id == row.id)))
        removed = old - set(new_domains)
        added = [d for d in new_domains if d not in old]
        if removed:
            w.execute(delete(CompanyDomain).where(CompanyDomain.company_id == row.id,
                                                  CompanyDomain.domain.in_(removed)))
        w.add_all(CompanyDomain(company_id=row.id, domain=d) for d in added)
        w.flush()
        relinked = relink_unknown(w, ctx, emails=[], domains=added,
                                  extra_freemail=frozenset(ctx.settings.freemail_domains_extra))
        ctx.audit(w, "company-edit", f"company:{row.id}", before=before,
                  after={k: v for k, v in values.items() if k != "domains"}, domains_added=added,
                  domains_removed=sorted(removed), relinked=relinked)
    forget_counts()
    return ctx.redirect(f"/contacts/company/{company.id}")


@route("/contacts/company/{company_id:int}/merge", ("POST",), heavy=True)
def company_merge(ctx: Ctx) -> Response:
    """Merge this company into another: its contacts, domains, messages and pratiche move, then
    it is deleted."""
    _may_edit(ctx)
    assert ctx.user is not None
    source = _company(ctx, ctx.db, ctx.params["company_id"])
    into = ctx.f("into")
    if not into.isdigit() or int(into) == source.id:
        return _render_company(ctx, source, error=_("Choose the company to merge this one into."), status_code=400)
    target = _company(ctx, ctx.db, int(into))
    with ctx.write() as w:
        moved_messages = list(w.scalars(select(Message.id).where(Message.company_id == source.id)))
        contacts = list(w.scalars(select(Contact.id).where(Contact.company_id == source.id)))
        domains = list(w.scalars(select(CompanyDomain.domain).where(CompanyDomain.company_id == source.id)))
        pratiche = list(w.scalars(select(Pratica.code).where(Pratica.company_id == source.id)))
        w.execute(update(Contact).where(Contact.company_id == source.id).values(company_id=target.id))
        w.execute(update(CompanyDomain).where(CompanyDomain.company_id == source.id).values(company_id=target.id))
        w.execute(update(Pratica).where(Pratica.company_id == source.id).values(company_id=target.id))
        w.execute(update(Message).where(Message.company_id == source.id).values(company_id=target.id))
        _record_events(w, moved_messages, ctx.user.username, "company-merged",
                       {"from": source.id, "from_name": source.name, "to": target.id, "to_name": target.name})
        row = w.get(Company, target.id)
        assert row is not None
        for attr in ("vat_number", "fiscal_code", "agent", "category"):
            if not getattr(row, attr) and getattr(source, attr):
                setattr(row, attr, getattr(source, attr))
        w.flush()
        w.execute(delete(Company).where(Company.id == source.id))
        ctx.audit(w, "company-merge", f"company:{target.id}", merged=source.id, merged_name=source.name,
                  contacts=contacts, domains=domains, pratiche=pratiche, messages=len(moved_messages))
    forget_counts()
    return ctx.redirect(f"/contacts/company/{target.id}")


# ---------------------------------------------------------------- contact card
@route("/contacts/contact/{contact_id:int}", ("GET",))
def contact_card(ctx: Ctx) -> Response:
    contact = _contact(ctx, ctx.db, ctx.params["contact_id"])
    return _render_contact(ctx, contact)


def _render_contact(ctx: Ctx, contact: Contact, *, error: str | None = None, status_code: int = 200,
                    form: dict[str, str] | None = None) -> Response:
    assert ctx.user is not None and ctx.grant is not None
    emails = list(ctx.db.scalars(select(ContactEmail.email).where(ContactEmail.contact_id == contact.id)
                                 .order_by(ContactEmail.email)))
    company = ctx.db.get(Company, contact.company_id) if contact.company_id else None
    mail = list_page(ctx.db, ctx.grant, ctx.user.id, Filters(), page_size=20,
                     extra=[Message.contact_id == contact.id])
    companies = list(ctx.db.execute(select(Company.id, Company.name).where(_company_scope(ctx))
                                    .order_by(func.lower(Company.name)).limit(500)).all())
    others = list(ctx.db.execute(select(Contact.id, Contact.name).where(Contact.id != contact.id, _contact_scope(ctx))
                                 .order_by(func.lower(Contact.name)).limit(500)).all())
    values = form or {"name": contact.name, "company_id": str(contact.company_id or ""), "emails": "\n".join(emails)}
    return ctx.render("contacts/contact.html", status_code=status_code, contact=contact, emails=emails,
                      company=company, mail=mail, companies=companies, others=others, values=values,
                      can_edit=ctx.user.role in EDITORS, error=error)


@route("/contacts/contact/{contact_id:int}", ("POST",))
def contact_edit(ctx: Ctx) -> Response:
    _may_edit(ctx)
    contact = _contact(ctx, ctx.db, ctx.params["contact_id"])
    values = {"name": ctx.f("name").strip(), "company_id": ctx.f("company_id"), "emails": ctx.f("emails")}
    error = None
    company_id = int(values["company_id"]) if values["company_id"].isdigit() else None
    if company_id is not None:
        _company(ctx, ctx.db, company_id)
    elif ctx.user is not None and ctx.user.role == "agent":
        error = _("Choose one of your companies.")
    emails = _lines(values["emails"])
    if not values["name"]:
        error = _("The contact needs a name.")
    elif any("@" not in e for e in emails):
        error = _("Write one e-mail address per line.")
    else:
        taken = list(ctx.db.scalars(select(ContactEmail.email).where(ContactEmail.email.in_(emails),
                                                                     ContactEmail.contact_id != contact.id)))
        if taken:
            error = _("%(e)s belongs to another contact: merge the two contacts instead.") % {"e": ", ".join(taken)}
    if error:
        return _render_contact(ctx, contact, error=error, status_code=400, form=values)
    with ctx.write() as w:
        row = w.get(Contact, contact.id)
        assert row is not None
        before = {"name": row.name, "company_id": row.company_id}
        row.name = values["name"]
        company_changed = row.company_id != company_id
        row.company_id = company_id
        old = set(w.scalars(select(ContactEmail.email).where(ContactEmail.contact_id == row.id)))
        removed = old - set(emails)
        added = [e for e in emails if e not in old]
        if removed:
            w.execute(delete(ContactEmail).where(ContactEmail.contact_id == row.id, ContactEmail.email.in_(removed)))
        w.add_all(ContactEmail(contact_id=row.id, email=e) for e in added)
        if company_changed:
            w.execute(update(Message).where(Message.contact_id == row.id, Message.link_kind == "contact")
                      .values(company_id=company_id))
        w.flush()
        relinked = relink_unknown(w, ctx, emails=added, domains=[],
                                  extra_freemail=frozenset(ctx.settings.freemail_domains_extra))
        ctx.audit(w, "contact-edit", f"contact:{row.id}", before=before,
                  after={"name": row.name, "company_id": company_id}, emails_added=added,
                  emails_removed=sorted(removed), relinked=relinked)
    forget_counts()
    return ctx.redirect(f"/contacts/contact/{contact.id}")


@route("/contacts/contact/{contact_id:int}/merge", ("POST",), heavy=True)
def contact_merge(ctx: Ctx) -> Response:
    _may_edit(ctx)
    assert ctx.user is not None
    source = _contact(ctx, ctx.db, ctx.params["contact_id"])
    into = ctx.f("into")
    if not into.isdigit() or int(into) == source.id:
        return _render_contact(ctx, source, error=_("Choose the contact to merge this one into."), status_code=400)
    target = _contact(ctx, ctx.db, int(into))
    with ctx.write() as w:
        moved = list(w.scalars(select(Message.id).where(Message.contact_id == source.id)))
        emails = list(w.scalars(select(ContactEmail.email).where(ContactEmail.contact_id == source.id)))
        w.execute(update(ContactEmail).where(ContactEmail.contact_id == source.id).values(contact_id=target.id))
        company_id = target.company_id if target.company_id is not None else source.company_id
        w.execute(update(Message).where(Message.contact_id == source.id)
                  .values(contact_id=target.id, company_id=company_id))
        _record_events(w, moved, ctx.user.username, "contact-merged",
                       {"from": source.id, "from_name": source.name, "to": target.id, "to_name": target.name})
        row = w.get(Contact, target.id)
        assert row is not None
        if row.company_id is None and company_id is not None:
            row.company_id = company_id
            w.execute(update(Message).where(Message.contact_id == target.id, Message.link_kind == "contact")
                      .values(company_id=company_id))
        w.flush()
        w.execute(delete(Contact).where(Contact.id == source.id))
        ctx.audit(w, "contact-merge", f"contact:{target.id}", merged=source.id, merged_name=source.name,
                  emails=emails, messages=len(moved))
    forget_counts()
    return ctx.redirect(f"/contacts/contact/{target.id}")


# ---------------------------------------------------------------- new from an unknown sender
def _guess_company(domain: str) -> str:
    labels = domain.split(".")
    base = labels[-2] if len(labels) >= 2 else domain
    return base.replace("-", " ").title()


@route("/contacts/new", ("GET",))
def new_form(ctx: Ctx) -> Response:
    _may_edit(ctx)
    email = (ctx.query.get("email") or "").strip().lower()
    name = (ctx.query.get("name") or "").strip()
    source = ctx.query.get("message") or ""
    if source.isdigit() and ctx.grant is not None:  # from the list: prefilled with a message's sender
        msg = visible_message(ctx.db, ctx.grant, int(source))
        if msg is None:
            raise HTTPException(404)
        email, name = (msg.from_addr or "").strip().lower(), (msg.from_name or "").strip()
    domain = email.rpartition("@")[2] if "@" in email else ""
    extra = frozenset(ctx.settings.freemail_domains_extra)
    freemail = bool(domain) and is_freemail(domain, extra)
    link = resolve_links(ctx.db, {email}, extra).get(email) if domain and not freemail else None
    existing = link.company_id if link is not None else None
    values = {"name": name or email.partition("@")[0], "email": email, "company": "existing" if existing else
              ("none" if freemail or not domain else "new"), "company_id": str(existing or ""),
              "company_name": "" if freemail else _guess_company(domain), "domain": "" if freemail else domain}
    return _render_new(ctx, values, freemail=freemail)


def _render_new(ctx: Ctx, values: dict[str, str], *, freemail: bool = False, error: str | None = None,
                status_code: int = 200) -> Response:
    companies = list(ctx.db.execute(select(Company.id, Company.name).where(_company_scope(ctx))
                                    .order_by(func.lower(Company.name)).limit(1000)).all())
    return ctx.render("contacts/new.html", status_code=status_code, values=values, companies=companies,
                      freemail=freemail, error=error)


@route("/contacts/new", ("POST",))
def new_create(ctx: Ctx) -> Response:
    _may_edit(ctx)
    assert ctx.user is not None
    values = {k: ctx.f(k).strip() for k in ("name", "email", "company", "company_id", "company_name", "domain")}
    values["email"] = values["email"].lower()
    values["domain"] = values["domain"].lower().lstrip("@")
    extra = frozenset(ctx.settings.freemail_domains_extra)
    error = None
    if not values["name"]:
        error = _("The contact needs a name.")
    elif "@" not in values["email"]:
        error = _("Write the contact's e-mail address.")
    elif ctx.db.scalar(select(ContactEmail.contact_id).where(ContactEmail.email == values["email"])):
        error = _("This address belongs to a contact already: search for it in the contacts.")
    elif values["company"] == "existing" and not values["company_id"].isdigit():
        error = _("Choose the company from the list.")
    elif values["company"] == "new" and not values["company_name"]:
        error = _("The company needs a name.")
    elif values["company"] == "new" and values["domain"] and is_freemail(values["domain"], extra):
        error = _("%(d)s is a free-mail or PEC provider: leave the domain empty.") % {"d": values["domain"]}
    elif values["company"] == "new" and _domains_taken(ctx.db, [values["domain"]] if values["domain"] else [], None):
        error = _("Domain %(d)s belongs to another company: choose that company.") % {"d": values["domain"]}
    elif ctx.user.role == "agent" and values["company"] == "none":
        error = _("Choose one of your companies or create one.")
    if error is None and values["company"] == "existing":
        _company(ctx, ctx.db, int(values["company_id"]))
    if error:
        return _render_new(ctx, values, error=error, status_code=400)
    with ctx.write() as w:
        company_id: int | None = None
        domains: list[str] = []
        if values["company"] == "existing":
            company_id = int(values["company_id"])
        elif values["company"] == "new":
            company = Company(name=values["company_name"], lifecycle="suspect",
                              agent=ctx.user.username if ctx.user.role == "agent" else None)
            w.add(company)
            w.flush()
            company_id = company.id
            if values["domain"]:
                domains = [values["domain"]]
                w.add(CompanyDomain(company_id=company.id, domain=values["domain"]))
        contact = Contact(name=values["name"], company_id=company_id)
        w.add(contact)
        w.flush()
        w.add(ContactEmail(contact_id=contact.id, email=values["email"]))
        w.flush()
        relinked = relink_unknown(w, ctx, emails=[values["email"]], domains=domains, extra_freemail=extra)
        ctx.audit(w, "contact-create", f"contact:{contact.id}", email=values["email"], company_id=company_id,
                  new_company=values["company"] == "new", domains=domains, relinked=relinked)
        contact_id = contact.id
    forget_counts()
    return ctx.redirect(f"/contacts/contact/{contact_id}?created={relinked}")


ROUTES = [contacts_list, company_card, company_edit, company_merge, contact_card, contact_edit, contact_merge,
          new_form, new_create]
